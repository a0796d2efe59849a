"""Photo storage: magic bytes not names, size limit, decompression bombs, dedupe, EXIF location."""
import io
import struct
import zipfile
import zlib
from datetime import datetime

import pytest
from PIL import Image
from sqlalchemy import select

from bot.config import LedgerSettings
from bot.media import MediaError, discard_unlinked, media_path, sniff, store_photo, sweep_orphan_files
from bot.storage.db import session_factory, transaction
from bot.storage.models import Attachment

NOW = datetime(2026, 11, 22, 9, 0)
SETTINGS = LedgerSettings()


def image_bytes(fmt="JPEG", size=(8, 8), color="red", gps=None) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", size, color)
    kwargs = {}
    if gps:
        exif = Image.Exif()
        exif[0x8825] = gps
        kwargs["exif"] = exif
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims the given size (what a decompression bomb looks like)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(  # noqa: E731
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.fixture
def session(db_engine):
    with transaction(session_factory(db_engine)) as s:
        yield s


def store(session, tmp_path, data: bytes, name="photo.jpg"):
    path = tmp_path / name
    path.write_bytes(data)
    return store_photo(session, tmp_path / "data", path, SETTINGS, NOW)


def test_jpeg_is_stored_by_content_hash(session, tmp_path):
    data = image_bytes()
    row = store(session, tmp_path, data)
    assert row.mime == "image/jpeg" and row.size == len(data) and row.hazard_id is None and row.id
    path = media_path(tmp_path / "data", row.sha256)
    assert path.read_bytes() == data and path.parent.name == row.sha256[:2]


def test_same_photo_twice_is_one_file(session, tmp_path):
    data = image_bytes("PNG")
    a, b = store(session, tmp_path, data, "a.png"), store(session, tmp_path, data, "b.png")
    assert a.sha256 == b.sha256
    assert len(list((tmp_path / "data" / "media").rglob("*"))) == 2  # one folder, one file


def test_type_comes_from_bytes_not_name(session, tmp_path):
    assert store(session, tmp_path, image_bytes("PNG"), "report.exe").mime == "image/png"
    assert store(session, tmp_path, image_bytes("WEBP"), "x.jpg").mime == "image/webp"


def test_executable_named_jpg_is_refused(session, tmp_path):
    with pytest.raises(MediaError, match="可执行程序"):
        store(session, tmp_path, b"\x7fELF\x02\x01\x01" + b"\0" * 200, "cat.jpg")
    with pytest.raises(MediaError, match="可执行程序"):
        store(session, tmp_path, b"MZ\x90\x00" + b"\0" * 200, "cat.jpg")


def test_zip_named_jpg_is_refused(session, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.txt", b"\0" * 1_000_000)
    with pytest.raises(MediaError, match="压缩包"):
        store(session, tmp_path, buf.getvalue(), "photo.jpg")


def test_text_is_refused(session, tmp_path):
    with pytest.raises(MediaError, match="不是照片"):
        store(session, tmp_path, "楼道里有电动车".encode(), "photo.png")


def test_oversized_file_is_refused_before_reading(session, tmp_path):
    path = tmp_path / "huge.jpg"
    with path.open("wb") as fh:
        fh.write(image_bytes())
        fh.truncate(50 * 1024 * 1024)  # sparse: cheap to make
    with pytest.raises(MediaError, match="太大.*50.0 MB"):
        store_photo(session, tmp_path / "data", path, SETTINGS, NOW)
    assert not (tmp_path / "data" / "media").exists()


def test_decompression_bomb_is_refused(session, tmp_path):
    with pytest.raises(MediaError, match="像素"):
        store(session, tmp_path, png_header_only(100_000, 100_000), "bomb.png")


def test_image_just_over_the_pixel_cap_is_refused(session, tmp_path):
    with pytest.raises(MediaError, match="像素"):
        store(session, tmp_path, png_header_only(20_000, 6_000), "wide.png")


def test_corrupt_jpeg_is_refused(session, tmp_path):
    with pytest.raises(MediaError, match="损坏"):
        store(session, tmp_path, b"\xff\xd8\xff\xe0" + b"garbage" * 20, "x.jpg")


def test_heic_is_accepted_by_its_brand(session, tmp_path):
    data = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 100
    assert sniff(data[:16]) == "image/heic"
    assert store(session, tmp_path, data, "IMG_0001.HEIC").mime == "image/heic"


def test_empty_and_missing_files_are_refused(session, tmp_path):
    with pytest.raises(MediaError, match="空文件"):
        store(session, tmp_path, b"", "empty.jpg")
    with pytest.raises(MediaError, match="无法读取"):
        store_photo(session, tmp_path, tmp_path / "nope.jpg", SETTINGS, NOW)


def test_jpeg_exif_gps_becomes_a_place_suggestion(session, tmp_path):
    gps = {1: "N", 2: (30.0, 15.0, 36.0), 3: "E", 4: (120.0, 10.0, 30.0)}
    row = store(session, tmp_path, image_bytes("JPEG", gps=gps))
    assert row.exif_lat == pytest.approx(30.26) and row.exif_lon == pytest.approx(120.175)


def test_webp_exif_gps_southern_western(session, tmp_path):
    gps = {1: "S", 2: (33.0, 52.0, 0.0), 3: "W", 4: (70.0, 30.0, 0.0)}
    row = store(session, tmp_path, image_bytes("WEBP", gps=gps), "x.webp")
    assert row.exif_lat == pytest.approx(-33.866667) and row.exif_lon == pytest.approx(-70.5)


def test_photo_without_gps_has_no_location(session, tmp_path):
    row = store(session, tmp_path, image_bytes())
    assert row.exif_lat is None and row.exif_lon is None


def test_discarding_a_draft_removes_only_its_photos(session, tmp_path):
    a = store(session, tmp_path, image_bytes(color="red"))
    b = store(session, tmp_path, image_bytes(color="blue"))
    assert discard_unlinked(session, [a.id]) == 1
    assert session.scalars(select(Attachment.id)).all() == [b.id]


def test_sweep_removes_files_nothing_refers_to(session, tmp_path):
    a = store(session, tmp_path, image_bytes(color="red"))
    b = store(session, tmp_path, image_bytes(color="blue"))
    discard_unlinked(session, [a.id])
    assert sweep_orphan_files(session, tmp_path / "data", datetime(2100, 1, 1)) == 1
    assert not media_path(tmp_path / "data", a.sha256).exists()
    assert media_path(tmp_path / "data", b.sha256).exists()
