"""The evaluation tier: datasets, the config, the paper's C-SVM protocol, solvers, baselines,
reports and the batch CLI. It builds on the engine (:mod:`rntk_core`) and knows nothing of
HTTP or Celery. Import the submodules you need; this package imports nothing itself."""
