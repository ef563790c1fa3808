"""Training: data loading, scikit-learn fitting and export to the numpy artifacts of :mod:`classifiers`.

Nothing on the inference path imports this package: ``classifiers``, ``policies`` and ``cascade``
score prompts and answers from artifacts with numpy alone. Training needs the ``train`` extra
(scikit-learn, which brings scipy) and pyarrow for the data sets.

* :mod:`classifiers.training.data`: the routing outcome data sets (parquet) as numpy matrices.
* :mod:`classifiers.training.fit`: ridge heads + logistic output layer -> :class:`classifiers.linear.LinearStack`.
* :mod:`classifiers.training.trees`: scikit-learn boosted trees -> :class:`classifiers.trees.TreeEnsemble`.
* :mod:`classifiers.training.train`: the prompt classifier, and the command line
  (``python -m classifiers.training.train {classifier,checker} ...``).
* :mod:`classifiers.training.train_checker`: the answer checker.

Importing this package imports none of those modules (``cascade train`` looks it up cheaply).
"""
