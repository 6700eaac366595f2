"""`python -m fxcrm.adapters.simulators.matchtrader`: HTTP on 127.0.0.1:7103 (see `--help`)."""

from fxcrm.adapters.simulators.matchtrader.serve import main

main()
