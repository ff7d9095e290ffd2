"""The landmark (Nystrom) path for datasets too large for dense Gram matrices.

- :mod:`.landmarks`: choosing landmark rows and the Nystrom feature map.
- :mod:`.blocks`: K(X, Z) computed in row blocks into a chunked (zarr) store.
- :mod:`.pipeline`: the evaluation on features: select on a subsample, fit the chosen
  kernels on all training rows with the linear C-SVM (:mod:`..solvers.linear_svm`), test.
- :mod:`.dense`: a dense job's grids as the same row blocks (K(X, X)), for a fan-out.
"""
