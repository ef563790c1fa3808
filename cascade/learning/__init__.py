"""The loop that learns from live traffic, offline side (the live side is :mod:`cascade.shadow` and
:mod:`cascade.feedback`):

    labels.py    shadow and feedback lines merged into their requests: per request, whether the
                 cheap answer was adequate, and the shadow model's answer as a recorded outcome
    train.py     ``cascade train --traces``: fit the adapted classifier and checker, write DIR/policy.yaml
                 with thresholds calibrated on the traces (cascade.calibrate's functions)
    promote.py   ``cascade promote``: replay candidate and live policy on held-out traces, switch only
                 when the candidate is no worse in quality and cheaper (bootstrap 95% intervals); rollback
"""
