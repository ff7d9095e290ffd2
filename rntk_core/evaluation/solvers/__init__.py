"""C-SVM solvers behind one interface: libsvm (scikit-learn) and the batched JAX solver."""
