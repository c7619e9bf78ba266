from third_party.tfds_cli import main

main()
