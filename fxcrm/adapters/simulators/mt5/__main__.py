"""`python -m fxcrm.adapters.simulators.mt5`: HTTPS on 127.0.0.1:7101 (see `--help`)."""

from fxcrm.adapters.simulators.mt5.serve import main

main()
