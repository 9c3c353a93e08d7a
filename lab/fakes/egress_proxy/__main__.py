from .cli import egress_proxy

egress_proxy()
