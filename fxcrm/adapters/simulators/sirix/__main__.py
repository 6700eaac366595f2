"""`python -m fxcrm.adapters.simulators.sirix`: HTTPS on 127.0.0.1:7104 (see `--help`)."""

from fxcrm.adapters.simulators.sirix.serve import main

main()
