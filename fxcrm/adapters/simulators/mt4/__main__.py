"""`python -m fxcrm.adapters.simulators.mt4`: HTTP on 127.0.0.1:7105 (see `--help`)."""

from fxcrm.adapters.simulators.mt4.serve import main

main()
