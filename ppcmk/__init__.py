"""ppcmk: Prefect runbooks for Power Platform customer-managed keys."""

__version__ = "0.1.0"
USER_AGENT = f"ppcmk/{__version__}"
