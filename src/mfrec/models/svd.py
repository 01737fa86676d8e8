"""Truncated SVD of the rating matrix with the missing entries imputed by a baseline.

The imputed matrix is  X = baseline + R,  where the baseline is 0 (``impute="zero"``),
the global mean (``"mean"``) or the regularised biases  mu + b_u + b_i  (``"bias"``), and
R is the *sparse* residual matrix: r_ui - baseline_ui at the observed entries and 0
everywhere else (an unobserved entry of X is exactly its baseline). So the top-k SVD of
X minus its baseline is the top-k SVD of R, and the users x items matrix is never built
unless the dense solver is chosen for a small problem. Scores are

    r_hat_ui = baseline_ui + sum_f U_uf s_f V_if,

stored as ``user_factors_ = U sqrt(s)``, ``item_factors_ = V sqrt(s)`` plus the baseline
in ``global_mean_``/``user_bias_``/``item_bias_``, so the usual factor-model formula gives
them. With ``impute="zero"`` this is PureSVD (Cremonesi, Koren & Turrin 2010): scores
are the rank-k reconstruction of the zero-filled matrix, meant for top-N ranking, not
rating prediction.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from mfrec._params import Constraint, Integer, Options, RandomStateConstraint, Real
from mfrec._random import check_random_state
from mfrec._threads import blas_threads
from mfrec.data.ratings import Ratings
from mfrec.exceptions import ParameterError
from mfrec.models.base import FactorModel, ValidationData

logger = logging.getLogger(__name__)

#: ``solver="auto"`` uses the exact dense SVD when the users x items matrix has at most
#: this many cells (2 MiB of float64; e.g. 500 x 500), an iterative solver above.
DENSE_MAX_CELLS = 2**18
#: The dense solver refuses matrices above this many cells (2 GiB of float64).
DENSE_LIMIT_CELLS = 2**28
#: ``solver="auto"`` on a large matrix: ARPACK for n_factors up to this share of
#: min(n_users, n_items), the randomized SVD above (ARPACK slows down as k grows).
ARPACK_MAX_SHARE = 0.1
#: Randomized SVD: extra random directions beyond n_factors (Halko et al. 2011, sec. 4).
N_OVERSAMPLES = 10


class TruncatedSVD(FactorModel):
    """Top-k SVD of the rating matrix, missing entries imputed by a baseline.

    Parameters
    ----------
    n_factors : int, default 20
        Singular triplets kept (at most min(n_users, n_items); the iterative solvers
        need strictly fewer).
    impute : {"bias", "mean", "zero"}, default "bias"
        Value assumed for a missing rating: the regularised baseline mu + b_u + b_i
        (biases as :class:`~mfrec.models.BiasBaseline`), the global mean, or 0 (PureSVD,
        for top-N ranking only: its scores are not ratings).
    solver : {"auto", "dense", "sparse", "randomized"}, default "auto"
        ``"dense"``: exact LAPACK SVD of the dense residual matrix (scipy.linalg.svd).
        ``"sparse"``: ARPACK on the sparse residual (scipy.sparse.linalg.svds), started
        from a seeded vector. ``"randomized"``: randomized range finder with power
        iterations (Halko, Martinsson & Tropp 2011), seeded. ``"auto"``: dense when the
        matrix has at most :data:`DENSE_MAX_CELLS` cells (or when n_factors is the full
        rank), else ARPACK for n_factors <= 10% of min(n_users, n_items), else
        randomized.
    reg_user, reg_item : float, default 15, 10
        Regularisation of the user and item biases (``impute="bias"`` only).
    random_state : None, int or numpy Generator
        Seeds ARPACK's start vector and the randomized solver's test matrix; the dense
        solver uses no randomness.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray of float64
        ``U sqrt(s)`` and ``V sqrt(s)``.
    singular_values_ : ndarray of float64
        The k largest singular values of the residual matrix, descending.
    global_mean_, user_bias_, item_bias_
        The baseline (biases are None unless ``impute="bias"``).
    solver_ : str
        The solver that ran.
    """

    name = "svd"
    _extra_arrays = ("singular_values_",)
    _constraints: ClassVar[dict[str, Constraint]] = {
        "n_factors": Integer(1, 100_000),
        "impute": Options(("bias", "mean", "zero")),
        "solver": Options(("auto", "dense", "sparse", "randomized")),
        "reg_user": Real(0, None),
        "reg_item": Real(0, None),
        "random_state": RandomStateConstraint(),
    }
    _fitted_scalars: ClassVar[tuple[str, ...]] = ("solver_",)

    def _bias_layout(self) -> tuple[bool, bool]:
        return (self.impute == "bias",) * 2

    def __init__(
        self,
        n_factors: int = 20,
        impute: str = "bias",
        solver: str = "auto",
        reg_user: float = 15.0,
        reg_item: float = 10.0,
        random_state: Any = None,
    ) -> None:
        self.n_factors = n_factors
        self.impute = impute
        self.solver = solver
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.random_state = random_state

    def _intercept(self) -> float:
        return 0.0 if self.impute == "zero" else self.global_mean_

    def _fit(self, train: Ratings, validation: ValidationData | None, callback: Any) -> None:
        n_users, n_items, k = train.n_users, train.n_items, self.n_factors
        if k > min(n_users, n_items):
            raise ParameterError(
                f"TruncatedSVD: n_factors={k} exceeds the rank limit min(n_users, n_items) = "
                f"{min(n_users, n_items)} of this data; use n_factors <= {min(n_users, n_items)}"
            )
        self.user_bias_ = self.item_bias_ = None
        if self.impute == "bias":
            from mfrec.models.baseline import BiasBaseline

            biases = BiasBaseline(reg_user=self.reg_user, reg_item=self.reg_item).fit(train)
            self.user_bias_ = biases.user_bias_.astype(np.float64)
            self.item_bias_ = biases.item_bias_.astype(np.float64)
        baseline = np.full(len(train), self._intercept())
        if self.user_bias_ is not None:
            baseline += self.user_bias_[train.user_index] + self.item_bias_[train.item_index]
        residual = sp.csr_matrix(
            (train.rating.astype(np.float64) - baseline, (train.user_index, train.item_index)),
            shape=(n_users, n_items),
        )
        solver = choose_solver(self.solver, n_users, n_items, k)
        rng = check_random_state(self.random_state)
        logger.info("TruncatedSVD: %s solver, %d x %d, k=%d", solver, n_users, n_items, k)
        # One BLAS thread: multi-threaded LAPACK splits reductions differently for each
        # thread count (last-bit differences), and the result must not depend on the
        # cores. The iterative solvers' heavy work is sparse products, single-threaded
        # in SciPy anyway; the dense solver only runs on small matrices by default.
        with blas_threads(1):
            u, s, vt = truncated_svd(residual, k, solver, rng)
        root = np.sqrt(s)
        self.user_factors_ = u * root
        self.item_factors_ = vt.T * root
        self.singular_values_ = s
        self.solver_ = solver

    def _solve_users(
        self, indptr: np.ndarray, item_index: np.ndarray, rating: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Fold-in by projection (PureSVD's folding-in, Sarwar et al. 2002): a user's
        residual row r~ (rating - baseline where rated, 0 elsewhere, exactly as in
        training) maps to  p = r~ Q diag(1/s),  since U sqrt(s) = R~ V diag(1/sqrt(s)).
        Folding a training user's own ratings back in gives back their factors. With
        ``impute="bias"`` the user's bias is first set as BiasBaseline sets it,
        b_u = sum (r - mu - b_i) / (reg_user + n_u)."""
        n_rows = len(indptr) - 1
        rows = np.repeat(np.arange(n_rows), np.diff(indptr))
        target = np.asarray(rating, dtype=np.float64) - self._intercept()
        bias = None
        if self.user_bias_ is not None:
            target = target - self.item_bias_[item_index]
            counts = np.diff(indptr).astype(np.float64)
            bias = np.bincount(rows, weights=target, minlength=n_rows) / (self.reg_user + counts)
            target = target - bias[rows]
        residual = sp.csr_matrix(
            (target, np.asarray(item_index), np.asarray(indptr)), shape=(n_rows, len(self.items_))
        )
        s = self.singular_values_
        inverse = np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)
        factors = np.asarray(residual @ self.item_factors_) * inverse
        return factors.astype(self.user_factors_.dtype), bias

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {"singular_values_": self.singular_values_}

    def _restore_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.singular_values_ = arrays["singular_values_"]


def choose_solver(solver: str, n_rows: int, n_cols: int, k: int) -> str:
    """The solver ``solver="auto"`` resolves to (see :class:`TruncatedSVD`), or check an
    explicit choice against the problem's size."""
    cells = n_rows * n_cols
    min_dim = min(n_rows, n_cols)
    if solver == "auto":
        if cells <= DENSE_MAX_CELLS or k >= min_dim:
            solver = "dense"
        elif k <= ARPACK_MAX_SHARE * min_dim:
            solver = "sparse"
        else:
            solver = "randomized"
    if solver == "dense" and cells > DENSE_LIMIT_CELLS:
        raise ParameterError(
            f"TruncatedSVD: the dense solver would build a {n_rows:,} x {n_cols:,} matrix "
            f"({cells:,} cells, limit {DENSE_LIMIT_CELLS:,}); use solver='sparse' or "
            "'randomized' with n_factors < min(n_users, n_items)"
        )
    if solver == "sparse" and k >= min_dim:
        raise ParameterError(
            f"TruncatedSVD: solver='sparse' (ARPACK) needs n_factors < min(n_users, n_items) "
            f"= {min_dim}, got {k}; use solver='dense' for the full rank"
        )
    return solver


def truncated_svd(
    matrix: sp.csr_matrix, k: int, solver: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top-``k`` singular triplets ``(U, s, Vt)`` of ``matrix``, s descending, with
    signs fixed so that the largest-magnitude entry of each column of U is positive."""
    import scipy.linalg

    if solver == "dense":
        u, s, vt = scipy.linalg.svd(matrix.toarray(), full_matrices=False, lapack_driver="gesdd")
        u, s, vt = u[:, :k], s[:k], vt[:k]
    elif solver == "sparse":
        from scipy.sparse.linalg import svds

        # A seeded start vector makes ARPACK deterministic; tol=0 means machine precision.
        v0 = rng.uniform(-1.0, 1.0, size=min(matrix.shape))
        u, s, vt = svds(matrix, k=k, v0=v0, tol=0, solver="arpack")
        order = np.argsort(s)[::-1]
        u, s, vt = u[:, order], s[order], vt[order]
    else:
        u, s, vt = randomized_svd(matrix, k, rng)
    return _flip_signs(np.ascontiguousarray(u), s, np.ascontiguousarray(vt))


def randomized_svd(
    matrix: sp.csr_matrix | np.ndarray,
    k: int,
    rng: np.random.Generator,
    n_oversamples: int = N_OVERSAMPLES,
    n_iter: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Randomized SVD (Halko, Martinsson & Tropp 2011, algorithms 4.4 and 5.1).

    A Gaussian test matrix of k + ``n_oversamples`` columns, ``n_iter`` power iterations
    (default 7 for k < 10% of the smaller dimension, else 4, as scikit-learn), each
    re-orthonormalised by QR so small singular values are not lost to rounding.
    """
    import scipy.linalg

    n_rows, n_cols = matrix.shape
    width = min(k + n_oversamples, min(n_rows, n_cols))
    if n_iter is None:
        n_iter = 7 if k < 0.1 * min(n_rows, n_cols) else 4
    omega = rng.standard_normal((n_cols, width))
    q, _ = scipy.linalg.qr(matrix @ omega, mode="economic")
    for _ in range(n_iter):
        z, _ = scipy.linalg.qr(matrix.T @ q, mode="economic")
        q, _ = scipy.linalg.qr(matrix @ z, mode="economic")
    small = np.asarray((matrix.T @ q).T)  # q^T A, shape (width, n_cols)
    ub, s, vt = scipy.linalg.svd(small, full_matrices=False)
    return q @ ub[:, :k], s[:k], vt[:k]


def _flip_signs(
    u: np.ndarray, s: np.ndarray, vt: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each singular pair (u_f, v_f) is defined up to a common sign; pick the sign that
    makes the largest-magnitude entry of u_f positive (scikit-learn's ``svd_flip``), so
    all solvers return the same factors."""
    if u.shape[1] == 0:
        return u, s, vt
    biggest = np.argmax(np.abs(u), axis=0)
    signs = np.sign(u[biggest, np.arange(u.shape[1])])
    signs[signs == 0] = 1.0
    return u * signs, s, vt * signs[:, None]
