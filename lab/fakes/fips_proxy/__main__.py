"""`python -m lab.fakes.fips_proxy`: the stand-in as a process (what the local backend runs for a
FIPS proxy image container)."""

from lab.fakes.fips_proxy.cli import fips_proxy

fips_proxy()
