"""The record of a run: its directory and id (``runs``), its SQLite journal (``journal``)
and the job results read back from it (``results``). The engine writes it; the views only
read it."""
