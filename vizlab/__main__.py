from vizlab.cli import main

main()
