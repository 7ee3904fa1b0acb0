"""Views of a run, read from its record (never from the hosts): progress figures, the live
view, ``show``, the HTML report and its charts, and the notebook's HTML."""
