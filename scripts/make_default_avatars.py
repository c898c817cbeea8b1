"""Build the portraits shipped in assets/avatars from public-domain pictures in scikit-image.

    .venv/bin/python scripts/make_default_avatars.py

Each picture is framed by our own cropper (``avatarify_app.tracking.align_portrait``) and
saved as a 256x256 PNG, with a JSON file beside it holding the crop box and the source.
scikit-image ships these files inside its wheel, so nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarify_app.frames import as_frame, load_image, save_image  # noqa: E402
from avatarify_app.paths import AVATARS_DIR  # noqa: E402
from avatarify_app.tracking import PortraitAligner  # noqa: E402

SOURCES = {
    # name: (skimage.data function, description, licence as stated by scikit-image)
    "astronaut": (
        "astronaut",
        "Eileen Collins, NASA astronaut (skimage.data.astronaut)",
        "No known copyright restrictions, released into the public domain (NASA; skimage docs)",
    ),
    "mona_lisa": (
        "file:../shared/media/mona.jpg",
        "Mona Lisa, Leonardo da Vinci (c. 1503-1519); photo of the painting",
        "Public domain (the painting; a faithful photo of a 2D public-domain work adds no copyright)",
    ),
    # skimage.data.camera (CC0) has a face too, but in profile: a poor FOMM source, so not shipped.
}


def main() -> int:
    from skimage import data

    AVATARS_DIR.mkdir(parents=True, exist_ok=True)
    with PortraitAligner() as aligner:
        for name, (func, description, licence) in SOURCES.items():
            if func.startswith("file:"):
                path = ROOT / func.removeprefix("file:")
                if not path.is_file():
                    print(f"{name}: skipped, {path} is not here")
                    continue
                image = load_image(path)
            else:
                image = as_frame(np.asarray(getattr(data, func)()))
            aligned = aligner.align(image)
            save_image(AVATARS_DIR / f"{name}.png", aligned.image)
            meta = {
                "source": description,
                "licence": licence,
                "source_shape": list(aligned.full_shape),
                "crop_box": {"cx": aligned.box.cx, "cy": aligned.box.cy, "side": aligned.box.side},
                "size": int(aligned.image.shape[0]),
                "made_by": "scripts/make_default_avatars.py",
            }
            (AVATARS_DIR / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
            print(f"{name}: {AVATARS_DIR / (name + '.png')} box={aligned.box}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
