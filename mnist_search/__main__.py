from mnist_search.cli import main

main()
