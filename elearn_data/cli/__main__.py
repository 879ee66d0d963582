"""``python -m elearn_data.cli``."""

from elearn_data.cli import main

main()
