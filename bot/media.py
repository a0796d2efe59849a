"""Photos for the hazard ledger: checked, stored by content hash, never trusted by name.

- Type by magic bytes only (JPEG, PNG, WebP, HEIC); a file's name or the platform's MIME type is
  ignored. Executables, archives, text and everything else are refused with a Chinese message.
- Size limit from config (`ledger.max_photo_bytes`), checked before the file is read.
- Decompression bombs: the image header is opened with Pillow, whose bomb check is made strict
  (a warning becomes an error) and the pixel count is capped; pixels are never decoded.
- Stored at <data_dir>/media/<sha[:2]>/<sha256>; the same photo twice is stored once.
- EXIF GPS (JPEG, WebP, PNG) is kept on the Attachment row as a suggestion for the place.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import warnings
from datetime import datetime
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import Attachment

log = logging.getLogger(__name__)

MAX_PIXELS = 100_000_000  # 100 MP: larger than any phone photo, far below a bomb
ACCEPTED = "JPG、PNG、WebP 或 HEIC"
_HEIC_BRANDS = (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1", b"ftypheim", b"ftypheis", b"ftyphevc")
_PILLOW_FORMAT = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
_GPS_IFD = 0x8825


class MediaError(ValueError):
    """A refused file; str(error) is the message for the user."""


def sniff(head: bytes) -> str | None:
    """The image MIME type from the first bytes, or None."""
    if head[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:12] in _HEIC_BRANDS:
        return "image/heic"
    return None


def _what_it_looks_like(head: bytes) -> str:
    if head[:2] == b"MZ" or head[:4] in (b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe"):
        return "可执行程序"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06") or head[:3] == b"BZh" or head[:2] == b"\x1f\x8b" \
            or head[:6] in (b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07"):
        return "压缩包"
    if head[:4] == b"%PDF":
        return "PDF 文件"
    if head[:4] in (b"GIF8",) or head[:2] == b"BM":
        return "不支持的图片格式"
    try:
        head.decode("utf-8")
        return "文本文件"
    except UnicodeDecodeError:
        return "未知格式的文件"


def media_path(data_dir: Path, sha256: str) -> Path:
    return Path(data_dir) / "media" / sha256[:2] / sha256


def _megabytes(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{max(1, n // 1024)} KB"


def _read_limited(source: str | Path | bytes, limit: int) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        path = Path(source)
        try:
            st = path.stat()
        except OSError as exc:
            raise MediaError("照片文件没有收到或无法读取，请重新发送。") from exc
        if not path.is_file():
            raise MediaError("照片文件没有收到或无法读取，请重新发送。")
        if st.st_size > limit:
            raise MediaError(f"照片太大（{_megabytes(st.st_size)}），单张不能超过 {_megabytes(limit)}，请压缩后再发。")
        with path.open("rb") as fh:
            data = fh.read(limit + 1)  # the file may have grown since stat()
    if len(data) > limit:
        raise MediaError(f"照片太大（{_megabytes(len(data))}），单张不能超过 {_megabytes(limit)}，请压缩后再发。")
    if not data:
        raise MediaError("收到的是空文件，请重新发送照片。")
    return data


def _rational(value) -> float:
    return float(value[0]) / float(value[1]) if isinstance(value, tuple) and len(value) == 2 else float(value)


def _degrees(dms, ref) -> float | None:
    try:
        d, m, s = (_rational(v) for v in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60 + s / 3600
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "ignore")
    return -value if str(ref).strip().upper() in ("S", "W") else value


def gps_from_exif(image: Image.Image) -> tuple[float | None, float | None]:
    """(lat, lon) in decimal degrees from EXIF GPS tags, or (None, None)."""
    try:
        gps = image.getexif().get_ifd(_GPS_IFD)
    except Exception:  # malformed EXIF must never refuse an otherwise good photo
        log.info("unreadable EXIF ignored", exc_info=True)
        return None, None
    if not gps or 2 not in gps or 4 not in gps:
        return None, None
    lat, lon = _degrees(gps[2], gps.get(1, "N")), _degrees(gps[4], gps.get(3, "E"))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None, None
    return round(lat, 6), round(lon, 6)


def inspect_image(data: bytes, mime: str) -> tuple[float | None, float | None]:
    """Open the header with Pillow (bomb-checked, never decoding pixels); returns the EXIF location."""
    if mime not in _PILLOW_FORMAT:  # HEIC: Pillow cannot read it here; the size limit still applies
        return None, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[_PILLOW_FORMAT[mime]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError("图片尺寸异常（像素数过大），已拒收。请发送普通照片。") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MediaError("照片已损坏，无法打开，请重新拍摄或发送。") from exc
    with image:
        width, height = image.size
        if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
            raise MediaError("图片尺寸异常（像素数过大），已拒收。请发送普通照片。")
        return gps_from_exif(image)


def _write_once(path: Path, data: bytes) -> None:
    if path.exists() and path.stat().st_size == len(data):
        return  # same content hash: already stored
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic: a crash leaves either nothing or the whole file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store_photo(
    session: Session,
    data_dir: Path,
    source: str | Path | bytes,
    settings,
    now: datetime,
    purpose: str = "report",
) -> Attachment:
    """Check and store one photo; returns its Attachment row (added and flushed, hazard_id None).

    `settings` is the ledger section of the config (max_photo_bytes). Raises MediaError with a
    message for the user when the file is refused.
    """
    data = _read_limited(source, settings.max_photo_bytes)
    mime = sniff(data[:16])
    if mime is None:
        kind = _what_it_looks_like(data[:16])
        log.info("refused upload: %s (%d bytes)", kind, len(data))
        raise MediaError(f"这不是照片（看起来是{kind}），已拒收。请发送 {ACCEPTED} 格式的照片。")
    lat, lon = inspect_image(data, mime)
    sha = hashlib.sha256(data).hexdigest()
    _write_once(media_path(data_dir, sha), data)
    row = Attachment(
        hazard_id=None, sha256=sha, mime=mime, size=len(data), purpose=purpose,
        exif_lat=lat, exif_lon=lon, created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def discard_unlinked(session: Session, attachment_ids: list[int]) -> int:
    """Delete attachment rows never linked to a hazard (an abandoned draft's photos); returns how
    many went. Files stay until sweep_orphan_files(): deleting them here could race with another
    draft storing the same content, or outlive a rolled-back transaction."""
    if not attachment_ids:
        return 0
    rows = session.scalars(
        select(Attachment).where(Attachment.id.in_(attachment_ids), Attachment.hazard_id.is_(None))
    ).all()
    for row in rows:
        session.delete(row)
    session.flush()
    return len(rows)


def sweep_orphan_files(session: Session, data_dir: Path, older_than: datetime) -> int:
    """Remove stored files no attachment row refers to, last modified before `older_than` (local
    naive time, like the clock). For a periodic job; returns how many files were removed."""
    root = Path(data_dir) / "media"
    if not root.is_dir():
        return 0
    cutoff = older_than.timestamp()
    removed = 0
    for path in root.glob("??/*"):
        if path.stat().st_mtime >= cutoff:
            continue
        if path.name.startswith(".incoming-"):  # left by a crash in the middle of a write
            path.unlink(missing_ok=True)
            removed += 1
            continue
        if session.scalar(select(Attachment.id).where(Attachment.sha256 == path.name).limit(1)) is None:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
