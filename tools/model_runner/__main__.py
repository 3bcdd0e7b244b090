"""Entry point: python -m tools.model_runner --host H --port P."""

from tools.model_runner.app import main

main()
