from mfrec.cli import main

main()
