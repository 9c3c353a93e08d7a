"""The FIPS proxy: the port map (ports.py), a recording stand-in (proxy.py), HAProxy config (haproxy.py)."""
