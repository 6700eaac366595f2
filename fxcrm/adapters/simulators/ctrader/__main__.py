"""`python -m fxcrm.adapters.simulators.ctrader`: HTTP on 127.0.0.1:7102 (see `--help`)."""

from fxcrm.adapters.simulators.ctrader.serve import main

main()
