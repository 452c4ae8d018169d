from siri.cli import main

main()
