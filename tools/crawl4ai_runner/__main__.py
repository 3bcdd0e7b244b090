"""Entry point: python -m tools.crawl4ai_runner --host H --port P."""

from tools.crawl4ai_runner.app import main

main()
