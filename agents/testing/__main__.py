from agents.testing.server import main

main()
