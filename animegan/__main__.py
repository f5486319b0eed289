from animegan.cli import main

main()
