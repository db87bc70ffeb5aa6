"""The studies: each a module with ``main(argv) -> int`` run by ``quadlab <name>`` or ``python studies/<name>.py``."""
