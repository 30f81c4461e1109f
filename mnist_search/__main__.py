from mnist_search.cli.app import main

main()
