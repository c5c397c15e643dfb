"""Scoring applicants at a partner, from the federated model artefact: batch files and an HTTP service.

One module per job: `identity` (what the artefact is and where it comes from), `validate` (raw rows
checked by the training rules, row by row), `attribution` (reason codes), `drift` (population
stability), `scorer` (rows → PD, points, decision, reasons), `batch` (files in chunks), `service`
(FastAPI + uvicorn). Nothing here imports Flower; only the command line imports this package.
"""
