"""The code that runs on hosts: standard library only, Python 3.8+."""
