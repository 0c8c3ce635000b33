"""`python -m trainpilot` (also what torchrun runs: `torchrun --nproc_per_node=2 -m trainpilot train ...`)."""

from trainpilot.cli import main

main()
