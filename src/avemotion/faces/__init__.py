"""Speaker face crops: find the speaking actor's face in each time step's frame and crop it.

For each kept utterance (stage ``faces``):

1. Decode the dialog video at the frames of the utterance's valid time steps (see
   video.py for the alignment rule: one frame per audio step, ``video.fps`` per second,
   only the first ``audio.seconds``). Reading seeks to the utterance instead of decoding
   the dialog from its start.
2. Take the speaker's camera view (``view`` from extract: left when the speaker letter
   equals the dialog letter, else right).
3. Run the face detector on every ``faces.detect_every``-th step's view (and on the
   last), in batches, resized by ``faces.detect_scale``, skipping the black bars above
   and below the picture. Of several faces in a view the detector keeps the most
   confident (sfd, retinaface) or the largest (cascade; after a hit it first searches
   near the last face, then the whole view).
4. Track: the detected face centres are median-filtered (three detections) to drop
   single false detections, interpolated linearly to the steps in between (a step with
   no detection takes the nearest detections on either side; before the first and after
   the last, the nearest one), then smoothed by a centred moving average over
   ``faces.smooth_s`` seconds so the crop does not jitter.
5. Crop a ``faces.crop_px`` square centred on the track, moved to lie inside the view
   (zero padding only where the view is smaller than the crop), resize it to
   ``faces.out_px`` (area interpolation), RGB uint8.

An utterance in which no face is found at all is cropped at the centre of the view and
flagged (``face_found`` false, ``frames_detected`` 0). A missing or undecodable video, or
a time range outside it, makes a reject with a reason; it never stops the stage.

Where each part lives:

- ``config``: `FacesConfig`, the params section ``faces``.
- ``weights``: the detectors' weights (``faces.weights``, face-alignment's download
  cache, a download) and their sha256; `DetectorUnavailable`.
- ``detectors``: the ``sfd``, ``retinaface`` and ``cascade`` detectors, `make_detector`.
- ``tracking``: the steps the detector runs on, the black bars it skips, the median-filtered
  and smoothed face track, the crop square.
- ``crop``: `FaceJob` and `FaceResult`; one utterance, and a chunk of one video's
  utterances, decoded, detected, tracked and cropped; the seek check.
- ``plan``: one job per kept utterance, its camera view (``faces.view``), chunks of work.
- ``pool``: worker processes that crop chunks in parallel, results in a fixed order.
- ``store``: ``Session<N>.parquet``: schema, streaming writer, `read_faces`.
- ``contact``: the contact sheets ``Session<N>.png``.
- ``stage``: `run`, the stage itself: outputs, summary, reproducibility.


    >>> cfg = FacesConfig(detector="cascade", out_px=48)
    >>> result = run(utterances, labels, "IEMOCAP_full_release", "faces", "contact",
    ...              cfg, AudioConfig(3.0), VideoConfig(5.0))            # doctest: +SKIP
    >>> for row, crops in read_faces("faces/Session1.parquet"):         # doctest: +SKIP
    ...     crops.shape                                                 # (n_frames, 48, 48, 3)
"""

from .config import (
    DETECTORS,
    Detector,
    FacesConfig,
)
from .weights import (
    DetectorUnavailable,
    HASH_PREFIX_RE,
    WEIGHT_URLS,
    cached_weights_path,
    detector_files_sha256,
    hash_prefix,
    resolve_device,
    resolve_weights,
    sha256_of,
    verify_weights,
)
from .detectors import (
    Box,
    CASCADE_ROI,
    CASCADE_ROI_SIZES,
    CASCADE_SCALE_FACTOR,
    CASCADE_WINDOW_PX,
    CascadeDetector,
    RetinaFaceDetector,
    SFDDetector,
    best_s3fd_boxes,
    make_detector,
)
from .tracking import (
    BLACK_LEVEL,
    MEDIAN_DETECTIONS,
    crop_origin,
    crop_square,
    detection_steps,
    picture_box,
    preview_image,
    smooth_window,
    track,
)
from .crop import (
    FaceJob,
    FaceResult,
    check_seeks,
    crop_chunk,
    crop_utterance,
    utterance_frames,
)
from .plan import (
    CHUNK_UTTERANCES,
    chunk_jobs,
    plan_jobs,
    speaker_view,
)
from .pool import (
    IN_FLIGHT_PER_WORKER,
    PARENT_POLL_S,
    available_cores,
    die_with_parent,
    iter_results,
    worker_devices,
)
from .store import (
    ROWS_PER_GROUP,
    SessionWriter,
    faces_schema,
    read_faces,
)
from .contact import (
    ContactSheet,
)
from .stage import (
    FacesRun,
    run,
)

__all__ = [
    "BLACK_LEVEL",
    "Box",
    "CASCADE_ROI",
    "CASCADE_ROI_SIZES",
    "CASCADE_SCALE_FACTOR",
    "CASCADE_WINDOW_PX",
    "CHUNK_UTTERANCES",
    "CascadeDetector",
    "ContactSheet",
    "DETECTORS",
    "Detector",
    "DetectorUnavailable",
    "FaceJob",
    "FaceResult",
    "FacesConfig",
    "FacesRun",
    "HASH_PREFIX_RE",
    "IN_FLIGHT_PER_WORKER",
    "MEDIAN_DETECTIONS",
    "PARENT_POLL_S",
    "ROWS_PER_GROUP",
    "RetinaFaceDetector",
    "SFDDetector",
    "SessionWriter",
    "WEIGHT_URLS",
    "available_cores",
    "best_s3fd_boxes",
    "cached_weights_path",
    "check_seeks",
    "chunk_jobs",
    "crop_chunk",
    "crop_origin",
    "crop_square",
    "crop_utterance",
    "detection_steps",
    "detector_files_sha256",
    "die_with_parent",
    "faces_schema",
    "hash_prefix",
    "iter_results",
    "make_detector",
    "picture_box",
    "plan_jobs",
    "preview_image",
    "read_faces",
    "resolve_device",
    "resolve_weights",
    "run",
    "sha256_of",
    "smooth_window",
    "speaker_view",
    "track",
    "utterance_frames",
    "verify_weights",
    "worker_devices",
]
