"""Pure functions of the landmark engine: fits, FOMM-style motion transfer, dense flow.

Notation follows FOMM (Siarohin et al. 2019, Sec. 3): keypoints ``kp`` with local
Jacobians ``J`` (2x2, the linear part of the motion near the keypoint). Here keypoints are
centroids of landmark groups and Jacobians are least-squares affine fits between the
reference driving group and the current one. All coordinates are crop pixels (x, y).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Similarity:
    """x -> A x + b with A = s R (no reflection)."""

    A: np.ndarray  # 2x2
    b: np.ndarray  # 2

    @property
    def scale(self) -> float:
        return float(np.sqrt(abs(np.linalg.det(self.A))))

    def apply(self, pts: np.ndarray) -> np.ndarray:
        return pts @ self.A.T + self.b


def inv2(m: np.ndarray) -> np.ndarray:
    """Closed-form inverse of (..., 2, 2) matrices (LAPACK per 2x2 costs more than the maths)."""
    det = m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]
    out = np.empty_like(m, dtype=np.float64)
    out[..., 0, 0] = m[..., 1, 1]
    out[..., 0, 1] = -m[..., 0, 1]
    out[..., 1, 0] = -m[..., 1, 0]
    out[..., 1, 1] = m[..., 0, 0]
    return out / det[..., None, None]


def fit_similarity(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> Similarity:
    """Least-squares similarity src -> dst (no reflection), optionally weighted. src, dst: Nx2;
    weights: N, non-negative, not all zero.

    In 2D this is Umeyama's fit in closed form: with centred points as complex numbers,
    the scaled rotation is z = sum w conj(s) d / sum w |s|^2 (no SVD needed)."""
    src = src.astype(np.float64)
    dst = dst.astype(np.float64)
    if weights is None:
        w = np.full(len(src), 1.0 / len(src))
    else:
        w = weights.astype(np.float64) / max(float(weights.sum()), 1e-12)
    ms, md = w @ src, w @ dst
    xs, xd = src - ms, dst - md
    var = float(w @ (xs[:, 0] ** 2 + xs[:, 1] ** 2))
    re = float(w @ (xs[:, 0] * xd[:, 0] + xs[:, 1] * xd[:, 1])) / max(var, 1e-12)
    im = float(w @ (xs[:, 0] * xd[:, 1] - xs[:, 1] * xd[:, 0])) / max(var, 1e-12)
    A = np.array([[re, -im], [im, re]])
    return Similarity(A=A, b=md - A @ ms)


def group_arrays(groups: list[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """Pad groups to one index matrix (G x M) with a validity mask, for vectorised fits."""
    m = max(len(g) for g in groups)
    idx = np.zeros((len(groups), m), dtype=np.int64)
    mask = np.zeros((len(groups), m), dtype=np.float64)
    for i, g in enumerate(groups):
        idx[i, : len(g)] = g
        mask[i, : len(g)] = 1.0
    return idx, mask


def group_centroids(landmarks: np.ndarray, idx: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Centroid of each group. Returns Gx2."""
    pts = landmarks.astype(np.float64)[idx]  # GxMx2
    return (pts * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)


def group_spread(landmarks: np.ndarray, idx: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RMS distance of each group's points to its centroid. Returns G."""
    pts = landmarks.astype(np.float64)[idx]
    c = group_centroids(landmarks, idx, mask)
    d2 = ((pts - c[:, None]) ** 2).sum(-1) * mask
    return np.sqrt(d2.sum(1) / mask.sum(1))


def fit_group_jacobians(a: np.ndarray, b: np.ndarray, idx: np.ndarray, mask: np.ndarray,
                        ridge: float = 0.15) -> np.ndarray:
    """Per group, the 2x2 J minimising sum |(b_i - b_mean) - J (a_i - a_mean)|^2, shrunk to the
    identity by a ridge proportional to the group's spread (keeps collinear groups sane).
    a, b: Nx2 landmarks. Returns Gx2x2."""
    pa = a.astype(np.float64)[idx]
    pb = b.astype(np.float64)[idx]
    w = mask[..., None]
    n = mask.sum(1)[:, None, None]
    xa = (pa - (pa * w).sum(1, keepdims=True) / n) * w  # GxMx2
    xb = (pb - (pb * w).sum(1, keepdims=True) / n) * w
    xtx = np.einsum("gmi,gmj->gij", xa, xa)
    ytx = np.einsum("gmi,gmj->gij", xb, xa)
    lam = ridge * np.trace(xtx, axis1=1, axis2=2)[:, None, None] * 0.5 + 1e-6
    eye = np.eye(2)[None]
    return (ytx + lam * eye) @ inv2(xtx + lam * eye)


def adapt_linear(sim: Similarity, adapt_scale: bool) -> np.ndarray:
    """The linear map that carries driving displacements into the source frame."""
    if adapt_scale:
        return sim.A
    return sim.A / max(sim.scale, 1e-9)


def relative_transfer(kp_src: np.ndarray, kp_ref: np.ndarray, kp_drv: np.ndarray,
                      jac_rel: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FOMM's relative rule in the source-aligned frame.

    kp_new = kp_src + A (kp_drv - kp_ref);  J_new = A (J_drv J_ref^-1) A^-1 J_src with
    J_src = I (the source's own frame) and J_drv J_ref^-1 = ``jac_rel`` (fitted ref -> drv).
    Returns (kp_new Kx2, J_new Kx2x2).
    """
    kp_new = kp_src + (kp_drv - kp_ref) @ A.T
    J_new = A[None] @ jac_rel @ inv2(A)[None]
    return kp_new, J_new


def backward_affines(kp_src: np.ndarray, kp_new: np.ndarray, J_new: np.ndarray,
                     stretch: tuple[float, float] = (0.5, 2.0)) -> np.ndarray:
    """Per keypoint the backward map z -> J_new^-1 (z - kp_new) + kp_src as rows
    [B00, B01, B10, B11, c0, c1] (z_src = B z + c). Returns Kx6.

    J_new's singular values are clipped to ``stretch`` and a reflection is dropped, so a wild
    fit (a scene cut, a lost face) stretches the picture at most that much and never mirrors it.
    """
    u, s, vt = np.linalg.svd(J_new)
    s = np.clip(s, *stretch)
    flip = np.linalg.det(u) * np.linalg.det(vt) < 0
    if flip.any():
        u = u.copy()
        u[flip, :, 1] *= -1.0  # nearest rotation-plus-stretch: no mirror image
    J = u @ (s[:, :, None] * vt)
    B = inv2(J)
    c = kp_src - np.einsum("kij,kj->ki", B, kp_new)
    return np.concatenate([B.reshape(-1, 4), c], axis=1)


def region_affine(src_axis: tuple[np.ndarray, np.ndarray, float, float],
                  new_axis: tuple[np.ndarray, np.ndarray, float, float]) -> np.ndarray:
    """Backward affine of an opening (mouth or eye interior): the output opening's box is
    mapped onto the source opening's box, squeezed across it when the source is narrower
    (a closed source mouth maps onto its lip seam: a stretched interior, no fold).
    Each axis: (centre, unit direction along the corners, width, height). Returns 6."""
    cs, us, ws, hs = src_axis
    cn, un, wn, hn = new_axis
    vs = np.array([-us[1], us[0]])
    vn = np.array([-un[1], un[0]])
    B = (ws / max(wn, 1e-6)) * np.outer(us, un) + (min(hs, hn) / max(hn, 1e-6)) * np.outer(vs, vn)
    c = cs - B @ cn
    return np.concatenate([B.reshape(4), c])


def opening_axis(landmarks: np.ndarray, corners: tuple[int, int],
                 pairs: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(centre, unit corner direction, width, mean opening height) of a mouth or eye."""
    a, b = landmarks[corners[0]].astype(np.float64), landmarks[corners[1]].astype(np.float64)
    d = b - a
    width = float(np.hypot(*d))
    u = d / max(width, 1e-6)
    top = landmarks[[p[0] for p in pairs]].astype(np.float64)
    bottom = landmarks[[p[1] for p in pairs]].astype(np.float64)
    height = float(np.linalg.norm(bottom - top, axis=1).mean())
    centre = 0.5 * (top.mean(0) + bottom.mean(0))
    return centre, u, width, height


def gaussian_weights(kp: np.ndarray, sigma: np.ndarray, amp: np.ndarray,
                     xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Separable Gaussian heatmaps amp_k exp(-|z - kp_k|^2 / (2 sigma_k^2)) on the grid
    xs (W) x ys (H). Returns KxHxW float32."""
    inv = (1.0 / (2.0 * sigma**2))[:, None]
    gx = np.exp(-((xs[None, :] - kp[:, :1]) ** 2) * inv).astype(np.float32)  # KxW
    gy = np.exp(-((ys[None, :] - kp[:, 1:]) ** 2) * inv).astype(np.float32) * amp[:, None].astype(np.float32)
    return gy[:, :, None] * gx[:, None, :]


def blend_backward(weights: np.ndarray, affines: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Normalised mixture of backward affine maps: sum_k w_k (B_k z + c_k) / sum_k w_k.
    weights KxHxW, affines Kx6. Returns the sampling positions HxWx2 (crop px)."""
    k, h, w = weights.shape
    flat = weights.reshape(k, h * w)
    coef = flat.T @ affines.astype(np.float32)  # Px6
    coef /= flat.sum(0)[:, None]
    gx = np.broadcast_to(xs[None, :], (h, w)).reshape(-1).astype(np.float32)
    gy = np.broadcast_to(ys[:, None], (h, w)).reshape(-1).astype(np.float32)
    mx = coef[:, 0] * gx + coef[:, 1] * gy + coef[:, 4]
    my = coef[:, 2] * gx + coef[:, 3] * gy + coef[:, 5]
    return np.stack([mx, my], axis=-1).reshape(h, w, 2)
