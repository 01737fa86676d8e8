"""numba kernels: arrays in, arrays out. Private; nothing here imports mfrec.

Each kernel keeps a short NumPy/Python reference beside it (``*_reference``) and the
tests check that they agree. Kernels compile with ``cache=True`` so the cost is paid
once per machine; they are imported lazily, only by the code that needs them.
"""
