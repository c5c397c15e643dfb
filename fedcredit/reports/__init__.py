"""Reports on a finished run for the people who sign it off: the model-risk report (`model_report`).

Everything here is built from what the partners released (score histograms, round-0 statistics) and
from the run directory; nothing reads a partner's rows."""
