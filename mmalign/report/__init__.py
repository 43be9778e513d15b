"""``mmalign report RUN_DIR [RUN_DIR ...] --out report/``: one HTML page plus PNG figures.

Per RUN_DIR (a checkpoint of ``mmalign train``, a folder of ``mmalign benchmark`` or
``benchmark cub-text``): the loss curves with the warm-up weights, the latent map of a trained
checkpoint, per-class accuracy and the confusion of the worst classes, the results against the
paper's numbers and few-shot curves, the cub-text retrieval bars; with several RUN_DIRs, the runs
side by side. The page opens from disk with no server and no network. Needs ``mmalign[report]``
(matplotlib, scikit-learn); `make_report` says so in one line when they are missing.
"""

from .build import make_report

__all__ = ["make_report"]
