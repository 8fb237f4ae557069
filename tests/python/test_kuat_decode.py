"""Image pixels: one decoding rule for JPEG, PNG and WebP of every pixel format (docs/kuat.md,
"Image pixels"), checked against PIL's convert("RGB") and PIL's alpha compositing."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from kuat_helpers import needs_image_codecs
from lowbit import _native

pytestmark = needs_image_codecs  # every test here decodes JPEG, PNG or WebP

decode = _native.kuat.decode_image
BACKGROUNDS = [(0, 0, 0), (255, 255, 255), (12, 200, 77)]


def composite(rgb: np.ndarray, alpha: np.ndarray, bg) -> np.ndarray:
    """PIL's Image.alpha_composite onto an opaque background, integer-exact (checked below)."""
    x = rgb.astype(np.int64) * alpha[..., None] + np.asarray(bg, np.int64) * (255 - alpha[..., None].astype(np.int64))
    t = (x << 7) + (0x80 << 7)
    return ((((t >> 8) + t) >> 8) >> 7).astype(np.uint8)


def luma_of(rgb: np.ndarray) -> np.ndarray:
    """convert_channels' gray, PIL's convert("L"): (19595 R + 38470 G + 7471 B + 32768) >> 16."""
    v = rgb.astype(np.int64)
    return (19595 * v[..., 0] + 38470 * v[..., 1] + 7471 * v[..., 2] + 0x8000) >> 16


def pil_reference(data: bytes, bg) -> np.ndarray:
    """PIL's convert("RGB") for opaque pixels, its RGBA composited onto bg for the others."""
    im = Image.open(io.BytesIO(data))
    rgba = im.convert("RGBA")
    back = Image.new("RGBA", im.size, tuple(bg) + (255,))
    return np.asarray(Image.alpha_composite(back, rgba).convert("RGB"))


def test_gray_is_pil_convert_l_for_every_colour():
    # Kind 1: channels=1 rounded (299 R + 587 G + 114 B) / 1000, one level above PIL's
    # convert("L") for 9040 of the 2^24 colours (e.g. (0, 0, 250): 29, PIL 28).
    v = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([v >> 16, (v >> 8) & 255, v & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG", compress_level=1)
    want = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(decode(buf.getvalue(), 1)[..., 0], want)
    np.testing.assert_array_equal(luma_of(rgb), want)


def test_composite_rule_is_pil_alpha_composite_exactly():
    v, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    src = np.stack([v, 255 - v, v // 2, a], -1).astype(np.uint8)
    for bg in BACKGROUNDS + [(1, 128, 254)]:
        back = Image.new("RGBA", (256, 256), bg + (255,))
        want = np.asarray(Image.alpha_composite(back, Image.fromarray(src, "RGBA")))[..., :3]
        np.testing.assert_array_equal(composite(src[..., :3], src[..., 3], bg), want)


# --- PNG: every color type x bit depth x tRNS, written by hand so every combination exists ---

def _chunk(t: bytes, d: bytes) -> bytes:
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def _pack_rows(samples: np.ndarray, depth: int) -> list:
    """samples: (h, w*channels) ints -> packed big-endian rows."""
    rows = []
    for r in samples:
        if depth == 16:
            rows.append(r.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(r.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            pad = (-len(r)) % per
            v = np.concatenate([r, np.zeros(pad, r.dtype)]).reshape(-1, per).astype(np.uint16)
            shifts = np.array([8 - depth * (k + 1) for k in range(per)], np.uint16)
            rows.append((v << shifts).sum(axis=1).astype(np.uint8).tobytes())
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_bytes(samples: np.ndarray, depth: int, color: int, chunks=(), interlace=False, plte=None, trns=None) -> bytes:
    """samples: (h, w, channels) stored values (palette indices for color 3)."""
    h, w, c = samples.shape
    raw = b""
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.size:
                raw += b"".join(b"\x00" + r for r in _pack_rows(sub.reshape(sub.shape[0], -1), depth))
    else:
        raw = b"".join(b"\x00" + r for r in _pack_rows(samples.reshape(h, -1), depth))
    body = b"".join(_chunk(t, d) for t, d in chunks)
    if plte is not None:
        body += _chunk(b"PLTE", plte.astype(np.uint8).tobytes())
    if trns is not None:
        body += _chunk(b"tRNS", trns)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 1 if interlace else 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + body + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))


COLOR_MANAGEMENT = [(b"gAMA", struct.pack(">I", 100000)),  # linear light: must NOT be applied
                    (b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)),
                    (b"sRGB", b"\x00")]


def png_case(color: int, depth: int, trns: bool, seed: int, h=7, w=13):
    """(png_bytes keyword spec, expected RGB before compositing as uint8, alpha uint8)."""
    rng = np.random.default_rng(seed)
    top = (1 << depth) - 1
    if color == 3:
        n = 1 << depth
        plte = rng.integers(0, 256, (n, 3))
        idx = rng.integers(0, n, (h, w, 1))
        rgb = plte[idx[..., 0]].astype(np.uint8)
        alpha = np.full((h, w), 255, np.uint8)
        trns_bytes = None
        if trns:
            pal_alpha = rng.integers(0, 256, n // 2 + 1).astype(np.uint8)  # shorter than the palette: rest opaque
            trns_bytes = pal_alpha.tobytes()
            full = np.concatenate([pal_alpha, np.full(n - len(pal_alpha), 255, np.uint8)])
            alpha = full[idx[..., 0]]
        return dict(samples=idx, depth=depth, color=3, plte=plte, trns=trns_bytes), rgb, alpha
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    s = rng.integers(0, top + 1, (h, w, channels))
    trns_bytes = None
    if color in (0, 2) and trns:
        key = s[h // 2, w // 2]
        s[0, :3] = key  # a few more pixels with the key colour
        trns_bytes = b"".join(struct.pack(">H", int(v)) for v in key)
    to8 = (lambda v: (v >> 8).astype(np.uint8)) if depth == 16 else (lambda v: (v * 255 // top).astype(np.uint8))
    gray = color in (0, 4)
    rgb = np.repeat(to8(s[..., :1]), 3, -1) if gray else to8(s[..., :3])
    alpha = np.full((h, w), 255, np.uint8)
    if color in (4, 6):
        alpha = to8(s[..., -1])
    elif trns:
        alpha = np.where((s == key).all(-1), 0, 255).astype(np.uint8)
    return dict(samples=s, depth=depth, color=color, trns=trns_bytes), rgb, alpha


# (color type, bit depth, tRNS chunk): every combination the PNG specification allows.
PNG_KINDS = ([(c, d, t) for c, depths in ((0, (1, 2, 4, 8, 16)), (2, (8, 16)), (3, (1, 2, 4, 8)))
              for d in depths for t in (False, True)]
             + [(c, d, False) for c in (4, 6) for d in (8, 16)])


@pytest.mark.filterwarnings("ignore:Palette images with Transparency")
@pytest.mark.parametrize("color,depth,trns", PNG_KINDS)
def test_png_every_color_type_and_depth(color, depth, trns):
    spec, rgb, alpha = png_case(color, depth, trns, seed=color * 100 + depth)
    data = png_bytes(**spec)
    for bg in BACKGROUNDS:
        want = composite(rgb, alpha, bg)
        np.testing.assert_array_equal(decode(data, 3, background=list(bg)), want)
        if not (color == 0 and depth == 16):  # PIL 9.4 opens 16-bit gray as mode I and clips on convert
            opaque = alpha == 255
            pil = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            np.testing.assert_array_equal(want[opaque], pil[opaque])
            if not trns or color == 3:  # PIL ignores a gray/RGB tRNS key; palettes carry real alpha
                np.testing.assert_array_equal(want, pil_reference(data, bg))
    # Adam7 interlacing and colour-management chunks (linear gAMA, cHRM, sRGB) change nothing.
    for interlace in (False, True):
        again = png_bytes(**spec, chunks=COLOR_MANAGEMENT if color != 3 else COLOR_MANAGEMENT[:2], interlace=interlace)
        np.testing.assert_array_equal(decode(again, 3), composite(rgb, alpha, (0, 0, 0)))
        luma = luma_of(rgb)
        if (alpha == 255).all():
            np.testing.assert_array_equal(decode(again, 1)[..., 0], luma)


@pytest.mark.filterwarnings("ignore:Palette images with Transparency")
@pytest.mark.parametrize("depth", [1, 2, 4, 8])
def test_png_palette_shorter_than_its_indices_or_its_trns(depth):
    # Kind 1, palette images PIL reads that libpng expands otherwise: an index beyond PLTE (PIL's
    # default palette entry (i, i, i); libpng gave black) and a tRNS longer than PLTE (PIL applies
    # it; libpng dropped it, so transparent pixels came out opaque).
    rng = np.random.default_rng(depth)
    n = 1 << depth
    short = max(1, n // 2 - 1)
    idx = rng.integers(0, n, (6, 11, 1))
    idx[0, :n] = np.arange(n)[:11, None][: min(n, 11)]  # every index that fits
    plte = rng.integers(0, 256, (short, 3))
    cases = {"index beyond PLTE": dict(trns=None),
             "tRNS longer than PLTE": dict(trns=rng.integers(0, 256, n).astype(np.uint8).tobytes()),
             "tRNS shorter than PLTE": dict(trns=bytes([0, 77])[: short])}
    for name, kw in cases.items():
        data = png_bytes(idx, depth, 3, plte=plte, **kw)
        for bg in BACKGROUNDS:
            np.testing.assert_array_equal(decode(data, 3, background=list(bg)), pil_reference(data, bg),
                                          err_msg=f"depth {depth}: {name}, background {bg}")


def test_png16_field_case_values_are_the_high_byte():
    v16 = np.zeros((16, 16), np.uint16)
    v16[:8, 8:], v16[8:, :8], v16[8:, 8:] = 0x4000, 0x8000, 0xC000
    expected = (v16 >> 8).astype(np.uint8)
    for data in (png_bytes(v16[..., None], 16, 0), png_bytes(np.stack([v16] * 3, -1), 16, 2),
                 png_bytes(np.stack([v16 >> 8] * 3, -1), 8, 2, [(b"gAMA", struct.pack(">I", 100000))])):
        out = decode(data, 3)
        np.testing.assert_array_equal(out, np.stack([expected] * 3, -1))
        np.testing.assert_array_equal(decode(data, 1)[..., 0], expected)


def test_png_with_icc_profile_is_not_transformed():
    rgb = np.random.default_rng(3).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    from PIL import ImageCms
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG", icc_profile=profile)
    assert b"iCCP" in buf.getvalue()
    np.testing.assert_array_equal(decode(buf.getvalue(), 3), rgb)


# --- JPEG: gray, RGB (subsampled or not), CMYK with and without Adobe marker, progressive ---

def photo(h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h)], -1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def strip_adobe(data: bytes) -> bytes:
    at = data.find(b"\xff\xee")
    assert at > 0
    n = struct.unpack(">H", data[at + 2:at + 4])[0]
    return data[:at] + data[at + 2 + n:]


def jpeg_cases():
    rgb = photo()
    out = {}
    for name, kwargs in {"rgb444": dict(subsampling=0), "rgb420": dict(subsampling=2),
                         "progressive": dict(progressive=True), "q50": dict(quality=50)}.items():
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", **kwargs)
        out[name] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("L").save(buf, "JPEG")
    out["gray"] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, "JPEG", quality=95)
    out["cmyk_adobe"] = buf.getvalue()
    out["cmyk_no_adobe"] = strip_adobe(out["cmyk_adobe"])
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, "JPEG", quality=95, progressive=True)
    out["cmyk_progressive"] = buf.getvalue()
    return out


@pytest.mark.parametrize("kind", list(jpeg_cases()))
def test_jpeg_matches_pil_convert_rgb(kind):
    data = jpeg_cases()[kind]
    want = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(decode(data, 3), want)
    # One channel is the luma of those RGB values: PIL's convert("L") (CMYK too).
    np.testing.assert_array_equal(decode(data, 1)[..., 0], np.asarray(Image.open(io.BytesIO(data)).convert("L")))
    np.testing.assert_array_equal(decode(data, 1)[..., 0], luma_of(want))


def _insert_before_marker(data: bytes, marker: bytes, junk: bytes, nth: int = 0) -> bytes:
    at = -1
    for _ in range(nth + 1):
        at = data.find(marker, at + 1)
    assert at > 0
    return data[:at] + junk + data[at:]


def benign_warning_jpegs():
    """JPEGs that make libjpeg warn without losing a pixel; PIL reads all of them."""
    rgb = photo(24, 32, 7)
    out = {}
    for progressive in (False, True):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", progressive=progressive)
        data = buf.getvalue()
        tag = "progressive" if progressive else "baseline"
        # "Corrupt JPEG data: N extraneous bytes before marker 0xd9" (common in scraped sets)
        out[f"{tag}_junk_before_eoi"] = data[:-2] + b"\x00" * 200 + data[-2:]
        if progressive:  # junk between two scans
            out[f"{tag}_junk_between_scans"] = _insert_before_marker(data, b"\xff\xda", b"\x00" * 64, nth=2)
        jfif = bytearray(data)
        jfif[jfif.find(b"JFIF\0") + 5] = 2  # "unknown JFIF revision number 2.01"
        out[f"{tag}_jfif_2"] = bytes(jfif)
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, "JPEG", quality=95)
    cmyk = bytearray(buf.getvalue())
    cmyk[cmyk.find(b"Adobe") + 11] = 7  # "Unknown Adobe color transform code 7": 4 components stay CMYK
    out["cmyk_adobe_transform_7"] = bytes(cmyk)
    return out


@pytest.mark.parametrize("kind", list(benign_warning_jpegs()))
def test_jpeg_warnings_that_lose_no_pixel_do_not_skip_the_file(kind):
    # Kind 1: such files were skipped as "corrupt JPEG" although PIL reads them, pixels intact.
    data = benign_warning_jpegs()[kind]
    want = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(decode(data, 3), want)


def test_jpeg_warnings_that_lose_pixels_still_fail():
    buf = io.BytesIO()
    Image.fromarray(photo(48, 64, 8)).save(buf, "JPEG")
    data = buf.getvalue()
    sos = data.find(b"\xff\xda")
    for broken, reason in ((data[: (sos + len(data)) // 2], "Premature end"),
                           (data[: (sos + len(data)) // 2] + b"\xff\xd9", "premature end of data segment")):
        with pytest.raises(OSError, match=reason):
            decode(broken, 3)


# --- WebP: lossy, lossless, alpha, animated (first frame, sub-rectangle frames) ---

def rgba_image(h=24, w=32, seed=1):
    rgb = photo(h, w, seed)
    a = np.zeros((h, w), np.uint8)
    a[:, : w // 3] = 255
    a[:, w // 3: 2 * w // 3] = np.linspace(0, 255, h)[:, None].astype(np.uint8)
    return np.dstack([rgb, a])


def webp_cases():
    out = {}
    rgb, rgba = photo(), rgba_image()
    for name, img, kw in (("lossy", Image.fromarray(rgb), dict(quality=80)),
                          ("lossless", Image.fromarray(rgb), dict(lossless=True)),
                          ("lossy_alpha", Image.fromarray(rgba, "RGBA"), dict(quality=80)),
                          ("lossless_alpha", Image.fromarray(rgba, "RGBA"), dict(lossless=True))):
        buf = io.BytesIO()
        img.save(buf, "WEBP", **kw)
        out[name] = buf.getvalue()
    for name, first in (("animated", Image.fromarray(rgb)), ("animated_alpha", Image.fromarray(rgba_image(40, 56), "RGBA"))):
        buf = io.BytesIO()
        second = Image.new(first.mode, first.size, (10, 10, 200, 255)[: len(first.mode)])
        first.save(buf, "WEBP", save_all=True, append_images=[second], duration=100, loop=0, lossless=True)
        out[name] = buf.getvalue()
    return out


@pytest.mark.parametrize("kind", list(webp_cases()))
def test_webp_matches_pil(kind):
    data = webp_cases()[kind]
    im = Image.open(io.BytesIO(data))
    assert getattr(im, "n_frames", 1) == (2 if kind.startswith("animated") else 1)
    for bg in BACKGROUNDS:
        np.testing.assert_array_equal(decode(data, 3, background=list(bg)), pil_reference(data, bg))


def _riff_chunk(tag: bytes, payload: bytes) -> bytes:
    return tag + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def _u24(v: int) -> bytes:
    return struct.pack("<I", v)[:3]


def animated_webp_with_offset_first_frame(canvas=(16, 12), first_at=(4, 2)) -> bytes:
    """An animation whose first frame covers only part of the canvas (ANMF offsets), built
    chunk by chunk: the rest of the canvas is transparent, so it shows the background."""
    frames = []
    for (x, y), img in ((first_at, rgba_image(6, 8, 3)), ((0, 0), rgba_image(canvas[1], canvas[0], 4))):
        buf = io.BytesIO()
        Image.fromarray(img, "RGBA").save(buf, "WEBP", lossless=True)
        data = buf.getvalue()
        at = data.find(b"VP8L")
        bitstream = _riff_chunk(b"VP8L", data[at + 8: at + 8 + struct.unpack("<I", data[at + 4: at + 8])[0]])
        h, w = img.shape[:2]
        header = _u24(x // 2) + _u24(y // 2) + _u24(w - 1) + _u24(h - 1) + _u24(100) + b"\x00"
        frames.append(_riff_chunk(b"ANMF", header + bitstream))
    vp8x = _riff_chunk(b"VP8X", bytes([0x12, 0, 0, 0]) + _u24(canvas[0] - 1) + _u24(canvas[1] - 1))
    anim = _riff_chunk(b"ANIM", struct.pack("<IH", 0xFF00FF00, 0))  # a green hint; decoders start transparent
    body = b"WEBP" + vp8x + anim + b"".join(frames)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_animated_webp_first_frame_smaller_than_the_canvas():
    data = animated_webp_with_offset_first_frame()
    im = Image.open(io.BytesIO(data))
    assert im.n_frames == 2 and im.size == (16, 12)
    for bg in BACKGROUNDS:
        out = decode(data, 3, background=list(bg))
        np.testing.assert_array_equal(out, pil_reference(data, bg))
        assert (out[0, 0] == bg).all() and (out[11, 15] == bg).all()  # outside the first frame


def test_same_pixels_same_result_in_every_container():
    rgba = rgba_image()
    results = []
    for fmt, kw in (("PNG", {}), ("WEBP", dict(lossless=True))):
        buf = io.BytesIO()
        Image.fromarray(rgba, "RGBA").save(buf, fmt, **kw)
        results.append(decode(buf.getvalue(), 3, background=[12, 200, 77]))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], composite(rgba[..., :3], rgba[..., 3], (12, 200, 77)))


# --- EXIF orientation: kept as stored by default, applied like ImageOps.exif_transpose on request ---

@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_only_on_request(fmt):
    rgb = photo(16, 24, 5)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, fmt, exif=exif.tobytes(), **({"lossless": True} if fmt == "WEBP" else {}))
        data = buf.getvalue()
        stored = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        np.testing.assert_array_equal(decode(data, 3), stored)
        turned = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
        np.testing.assert_array_equal(decode(data, 3, exif_transpose=True), turned, err_msg=f"{fmt} {orientation}")


def _exif_with_orientation(value: int, tiff_type: int, count: int = 1, little: bool = True) -> bytes:
    """A TIFF block (no "Exif" prefix) whose IFD0 holds only an Orientation entry."""
    e, order = ("<", b"II") if little else (">", b"MM")
    size = {1: 1, 6: 1, 3: 2, 8: 2, 4: 4, 9: 4}[tiff_type]
    one = struct.pack(e + {1: "B", 6: "b", 3: "H", 8: "h", 4: "I", 9: "i"}[tiff_type], value)
    inline = (one * count + b"\0" * 4)[:4]
    entry = struct.pack(e + "HHI", 0x0112, tiff_type, count) + inline
    return order + struct.pack(e + "HI", 42, 8) + struct.pack(e + "H", 1) + entry + struct.pack(e + "I", 0)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_of_any_integer_type_as_pil(fmt):
    # Kind 1: the Orientation tag stored as LONG, SSHORT, SLONG or BYTE (not the standard SHORT)
    # was ignored by --exif-transpose while PIL's exif_transpose applies it (of two values, the
    # first; an unsigned BYTE is no orientation to PIL, a signed one is).
    rgb = photo(6, 10, 9)
    for tiff_type in (1, 3, 4, 6, 8, 9):
        for little in (True, False):
            for value, count in ((6, 1), (3, 1), (8, 1)) + (((6, 2),) if tiff_type in (1, 3, 6, 8) else ()):
                exif = _exif_with_orientation(value, tiff_type, count, little)
                buf = io.BytesIO()
                Image.fromarray(rgb).save(buf, fmt, exif=(b"Exif\0\0" + exif) if fmt == "JPEG" else exif,
                                          **({"lossless": True} if fmt == "WEBP" else {}))
                data = buf.getvalue()
                turned = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
                np.testing.assert_array_equal(decode(data, 3, exif_transpose=True), turned,
                                              err_msg=f"{fmt} type {tiff_type} {'II' if little else 'MM'} {value}x{count}")


# --- Resource limits: refused from the header, before any allocation ---

def test_pixel_limit_from_the_header():
    small = png_bytes(np.zeros((8, 8, 3), np.uint8), 8, 2)
    assert decode(small, 3, max_pixels=64).shape == (8, 8, 3)
    with pytest.raises(OSError, match="over the limit of 63"):
        decode(small, 3, max_pixels=63)
    huge_png = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
                + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))
    with pytest.raises(OSError, match="100000 x 100000 = 10000000000 pixels, over the limit of 178956970"):
        decode(huge_png)
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buf, "JPEG")
    jpeg = bytearray(buf.getvalue())
    sof = jpeg.find(b"\xff\xc0")
    struct.pack_into(">HH", jpeg, sof + 5, 60000, 60000)
    with pytest.raises(OSError, match="JPEG is 60000 x 60000"):
        decode(bytes(jpeg))
    buf = io.BytesIO()
    Image.new("RGBA", (16, 16)).save(buf, "WEBP", lossless=True)
    assert decode(buf.getvalue(), 3, max_pixels=256).shape == (16, 16, 3)
    with pytest.raises(OSError, match="WebP is 16 x 16"):
        decode(buf.getvalue(), 3, max_pixels=255)


# --- Resource limits: what a file's body can make the decoder do ---

def _decode_seconds(data: bytes, **kw):
    import time
    t = time.perf_counter()
    out = decode(data, 3, **kw)
    return out, time.perf_counter() - t


def _zeros_deflate(mib: int) -> bytes:
    """A raw deflate block run for `mib` MiB of zero bytes, not final (made once, repeated)."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = z.compress(b"\0" * (1 << 20)) + z.flush(zlib.Z_FULL_FLUSH)
    return block * mib


def test_png_idat_data_after_the_image_is_not_inflated():
    # Kind 2: libpng inflated the whole rest of the IDAT stream after the last row (to warn
    # "too much image data"): a 1 MB PNG of 16 x 16 pixels hiding 1 GiB of zeros took 2-7 s.
    rgb = np.random.default_rng(4).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    filtered = b"".join(b"\0" + row.tobytes() for row in rgb)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = z.compress(filtered) + z.flush(zlib.Z_FULL_FLUSH) + _zeros_deflate(1024) + b"\x03\x00"  # empty final block
    adler = zlib.adler32(filtered)
    zero = b"\0" * (1 << 20)
    for _ in range(1024):
        adler = zlib.adler32(zero, adler)
    idat = b"\x78\xda" + stream + struct.pack(">I", adler)
    for interlace in (False, True):
        ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
        if interlace:  # the same bytes as Adam7 passes
            passes = b"".join(b"".join(b"\0" + r.tobytes() for r in rgb[y0::dy, x0::dx]) for x0, y0, dx, dy in ADAM7)
            z = zlib.compressobj(9, zlib.DEFLATED, -15)
            stream = z.compress(passes) + z.flush(zlib.Z_FULL_FLUSH) + _zeros_deflate(1024) + b"\x03\x00"
            adler = zlib.adler32(passes)
            for _ in range(1024):
                adler = zlib.adler32(zero, adler)
            idat = b"\x78\xda" + stream + struct.pack(">I", adler)
            ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 1)
        data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
        assert len(data) < 1_100_000
        out, seconds = _decode_seconds(data)
        np.testing.assert_array_equal(out, rgb)
        np.testing.assert_array_equal(out, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        assert seconds < 0.5, f"{seconds:.2f} s for a 16 x 16 PNG (interlace={interlace})"


def test_png_text_icc_and_other_ancillary_chunks_are_not_inflated():
    # Kind 2: libpng inflated every zTXt/iTXt chunk (up to its 8 MB chunk limit each, 1000 of
    # them): a 7 MB PNG of 16 x 16 pixels took 30-60 s. Only tRNS (and eXIf, from the stored
    # bytes) are read now; the pixels do not change.
    rgb = np.random.default_rng(5).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    bomb = zlib.compress(b"\0" * (7 << 20), 9)
    plain = png_bytes(rgb, 8, 2)
    at = plain.find(b"IDAT") - 4
    for name, chunks in (("zTXt", [_chunk(b"zTXt", b"k%d\0\0" % i + bomb) for i in range(300)]),
                         ("iTXt", [_chunk(b"iTXt", b"k%d\0\1\0\0\0" % i + bomb) for i in range(300)]),
                         ("iCCP", [_chunk(b"iCCP", b"icc\0\0" + zlib.compress(b"\0" * (64 << 20), 9))])):
        for where in (at, len(plain) - 12):  # before the image data, and after it
            data = plain[:where] + b"".join(chunks) + plain[where:]
            for exif in (False, True):
                out, seconds = _decode_seconds(data, exif_transpose=exif)
                np.testing.assert_array_equal(out, rgb)
                assert seconds < 0.5, f"{name}: {seconds:.2f} s"


def test_png_exif_orientation_from_the_chunk_pil_uses():
    # eXIf is read from the stored bytes (libpng skips ancillary chunks): before or after the
    # image data, and of several, the one PIL's exif_transpose applies.
    rgb = photo(6, 10, 1)
    plain = png_bytes(rgb, 8, 2)
    idat, iend = plain.find(b"IDAT") - 4, len(plain) - 12
    e6, e3 = (_chunk(b"eXIf", _exif_with_orientation(v, 3)) for v in (6, 3))
    for data in (plain[:idat] + e6 + plain[idat:], plain[:iend] + e6 + plain[iend:],
                 plain[:idat] + e6 + e3 + plain[idat:], plain[:idat] + e6 + plain[idat:iend] + e3 + plain[iend:],
                 plain[:iend] + e3 + e6 + plain[iend:]):
        turned = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
        np.testing.assert_array_equal(decode(data, 3, exif_transpose=True), turned)
        np.testing.assert_array_equal(decode(data, 3), rgb)


@pytest.mark.parametrize("interlace", [False, True])
def test_png_every_small_size_and_every_truncation(interlace):
    # The decoder stops reading once the last row is in: every size (Adam7 passes that are
    # empty included) still gets all its rows, and a file cut anywhere before that fails.
    rng = np.random.default_rng(6)
    for h in range(1, 12):
        for w in range(1, 12):
            rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            data = png_bytes(rgb, 8, 2, interlace=interlace)
            np.testing.assert_array_equal(decode(data, 3), rgb, err_msg=f"{h} x {w}")
    data = png_bytes(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8), 8, 2, interlace=interlace)
    for n in range(len(data)):
        try:
            np.asarray(Image.open(io.BytesIO(data[:n])).convert("RGB"))
            pil_reads = True
        except Exception:
            pil_reads = False
        try:
            decode(data[:n], 3)
            ours = True
        except OSError as e:
            assert "<bytes>" in str(e)
            ours = False
        if ours:
            assert pil_reads, f"cut at {n} of {len(data)}: kuat decodes what PIL refuses"


def _bits(fields) -> bytes:
    """Entropy-coded bytes of (value, nbits) fields, padded with 1 bits, 0xFF stuffed."""
    acc, n, out = 0, 0, bytearray()
    for value, nbits in fields:
        acc, n = (acc << nbits) | value, n + nbits
        while n >= 8:
            n -= 8
            out.append((acc >> n) & 0xFF)
            if out[-1] == 0xFF:
                out.append(0)
    if n:
        out.append(((acc << (8 - n)) | ((1 << (8 - n)) - 1)) & 0xFF)
        if out[-1] == 0xFF:
            out.append(0)
    return bytes(out)


def progressive_gray_jpeg(side: int, scans: int) -> bytes:
    """A valid progressive gray JPEG (side x side, side a multiple of 8; every coefficient zero,
    so every pixel is 128) of `scans` scans: the DC scan, then single-coefficient AC scans with
    successive approximation (Al 13, then refinements 13 -> 12, ..., 1 -> 0), 1 + 63 * 14 at most.
    AC scans are end-of-band runs, a few bytes each however large the image."""
    assert side % 8 == 0 and 1 <= scans <= 1 + 63 * 14
    blocks = (side // 8) ** 2

    def seg(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    def huffman(table_class: int, symbols) -> bytes:  # one code per length 1, 2, ...
        counts = [1 if i < len(symbols) else 0 for i in range(16)]
        return seg(0xC4, bytes([table_class << 4]) + bytes(counts) + bytes(symbols))

    def sos(ss, se, ah, al) -> bytes:
        return seg(0xDA, bytes([1, 1, 0x00, ss, se, (ah << 4) | al]))

    def eob_runs() -> bytes:  # code "0": EOB of one block; "10" + 14 bits: EOB run of 2^14 + v blocks
        fields, left = [], blocks
        while left >= 1 << 14:
            run = min(left, (1 << 15) - 1)
            fields += [(0b10, 2), (run - (1 << 14), 14)]
            left -= run
        return _bits(fields + [(0, 1)] * left)

    out = b"\xff\xd8" + seg(0xDB, b"\x00" + b"\x01" * 64)
    out += seg(0xC2, struct.pack(">BHHB", 8, side, side, 1) + bytes([1, 0x11, 0]))
    out += huffman(0, [0x00]) + huffman(1, [0x00, 0xE0])
    out += sos(0, 0, 0, 0) + _bits([(0, 1)] * blocks)  # every DC difference is 0
    done = 1
    for k in range(1, 64):
        for al in range(13, -1, -1):
            if done == scans:
                return out + b"\xff\xd9"
            out += sos(k, k, 0 if al == 13 else al + 1, al) + eob_runs()
            done += 1
    return out + b"\xff\xd9"


def test_progressive_jpeg_scan_limit():
    # Kind 2: every scan is a pass over the whole image however few bytes it takes, and libjpeg
    # has no limit: a 366 KB file of 10000 scans over 4096 x 4096 took 15 s, and the valid 64 KB
    # file built here (883 scans over 4096 x 4096) 3.3 s (PIL: 4.1 s). Up to 100 scans decode as
    # PIL does; more are refused, promptly (0.4 s there), naming the reason.
    for side, scans in ((64, 100), (64, 2), (512, 100)):
        data = progressive_gray_jpeg(side, scans)
        pil = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        np.testing.assert_array_equal(decode(data, 3), pil)
        assert (pil == 128).all()
    for side, scans in ((64, 101), (512, 883), (4096, 883)):
        data = progressive_gray_jpeg(side, scans)
        assert Image.open(io.BytesIO(data)).size == (side, side)  # PIL reads them (slowly)
        with pytest.raises(OSError, match="progressive JPEG with more than 100 scans"):
            decode(data, 3)


def test_jpeg_corrupt_scan_fails_at_once():
    # A warning that loses data fails the image when it happens; libjpeg used to go on through
    # every remaining scan first. The message is the first warning's.
    data = bytearray(progressive_gray_jpeg(64, 50))
    sos = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xDA]
    data[sos[1] + 10: sos[1] + 10] = b"\xff\xd0"  # an unexpected restart marker inside scan 2
    with pytest.raises(OSError, match="corrupt JPEG"):
        decode(bytes(data), 3)


def test_jpeg_precision_and_processes_libjpeg_turbo_lacks_are_unsupported_not_corrupt():
    buf = io.BytesIO()
    Image.fromarray(photo(16, 16, 2)).save(buf, "JPEG")
    data = buf.getvalue()
    sof = data.find(b"\xff\xc0")
    cases = {"12-bit samples": data[:sof + 4] + b"\x0c" + data[sof + 5:],
             "lossless (SOF3)": data[:sof + 1] + b"\xc3" + data[sof + 2:],
             "hierarchical (SOF5)": data[:sof + 1] + b"\xc5" + data[sof + 2:]}
    for name, bad in cases.items():
        with pytest.raises(OSError, match=r"'<bytes>': unsupported JPEG \(libjpeg-turbo reads 8-bit"):
            decode(bad, 3)


_PEAK_CHILD = r"""
import io, struct, sys, zlib
from lowbit import _native
from PIL import Image
import numpy as np
kind, W, H = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
def riff(tag, payload):
    return tag + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")
u24 = lambda v: struct.pack("<I", v)[:3]
if kind == "png":
    z = zlib.compressobj(9)
    row = b"\0" + bytes([10, 20, 30]) * W
    body = b"".join(z.compress(row) for _ in range(H)) + z.flush()
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0)) + chunk(b"IDAT", body)
            + chunk(b"IEND", b""))
else:  # an animation whose W x H canvas holds a 1 x 1 first frame
    buf = io.BytesIO()
    Image.fromarray(np.full((1, 1, 4), 200, np.uint8), "RGBA").save(buf, "WEBP", lossless=True)
    one = buf.getvalue()
    at = one.find(b"VP8L")
    frame = riff(b"ANMF", u24(0) * 4 + u24(100) + b"\0" + riff(b"VP8L", one[at + 8: at + 8 + struct.unpack("<I", one[at + 4: at + 8])[0]]))
    body = b"WEBP" + riff(b"VP8X", bytes([0x12, 0, 0, 0]) + u24(W - 1) + u24(H - 1)) + riff(b"ANIM", b"\0" * 6) + frame * 2
    data = b"RIFF" + struct.pack("<I", len(body)) + body
_native.kuat.decode_image(data[:0] + b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
                          + chunk(b"IDAT", zlib.compress(b"\0\0\0\0")) + chunk(b"IEND", b""))
def status_kb(field):  # this process's own figures (ru_maxrss carries the parent's peak across exec)
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
try:
    open("/proc/self/clear_refs", "w").write("5")  # the peak restarts from the current RSS
except OSError:
    pass
before = max(status_kb("VmRSS"), status_kb("VmHWM"))
out = _native.kuat.decode_image(data, 3)
after = status_kb("VmHWM")
assert out.shape == (H, W, 3)
print((after - before) * 1024 / (W * H))
"""


@pytest.mark.parametrize("kind", ["png", "animated_webp"])
def test_decoding_peak_memory_per_pixel(kind):
    # Kind 2: every decode returned a copy of its image (the peak was twice the image: 6 bytes a
    # pixel for RGB), and an animated WebP's first frame went through libwebp's animation
    # decoder, which keeps two more canvases: 12 bytes per canvas pixel, 1.9 GB for a 144-byte
    # file whose 16000 x 10000 canvas holds a 1 x 1 frame. Now 3 (RGB) and 4 (an RGBA canvas).
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-c", _PEAK_CHILD, kind, "3000", "2000"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    per_pixel = float(p.stdout)
    assert per_pixel < (3.5 if kind == "png" else 4.5), f"{kind}: {per_pixel:.2f} bytes per pixel at the peak"


def test_other_formats_are_refused_saying_what_they_are():
    # A GIF, TIFF, BMP or an HTML error page under an image name (common in scraped sets) is
    # refused naming its real type, not only as "not a JPEG, PNG or WebP image".
    im = Image.fromarray(photo(16, 16, 3))
    for fmt, what in (("GIF", "a GIF image"), ("TIFF", "a TIFF image"), ("BMP", "a BMP image"),
                      ("PPM", "a PNM (PBM/PGM/PPM) image"), ("ICO", "an ICO/CUR image")):
        buf = io.BytesIO()
        im.save(buf, fmt)
        with pytest.raises(OSError, match=rf"'<bytes>': {re.escape(what)}, not a JPEG, PNG or WebP image \(the formats"):
            decode(buf.getvalue(), 3)
    for data, what in ((b"\n <!DOCTYPE html><html>404</html>", "an HTML/XML document"), (b"%PDF-1.4", "a PDF document")):
        with pytest.raises(OSError, match=rf"'<bytes>': {re.escape(what)}.*, not a JPEG, PNG or WebP image$"):
            decode(data, 3)
    with pytest.raises(OSError, match=r"'<bytes>': not a JPEG, PNG or WebP image$"):
        decode(b"\x00\x01 no idea", 3)


_DECODE_PEAK_CHILD = r"""
import sys
from lowbit import _native
def status_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
data = open(sys.argv[1], "rb").read()
try:
    open("/proc/self/clear_refs", "w").write("5")
except OSError:
    pass
before = max(status_kb("VmRSS"), status_kb("VmHWM"))
try:
    _native.kuat.decode_image(data, 3)
    result = "decoded"
except OSError as e:
    result = str(e)
print((status_kb("VmHWM") - before) / 1024)
print(result)
"""


def _claiming_13000(kind: str) -> bytes:
    side = 13000  # 169 M pixels: under the default limit, 507 MB as RGB
    if kind.startswith("png"):
        ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 1 if kind == "png_interlaced" else 0)
        return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 100))
                + _chunk(b"IEND", b""))
    buf = io.BytesIO()
    noise = Image.effect_noise((64, 64), 50).convert("RGB")
    if kind == "jpeg":
        noise.save(buf, "JPEG")
        data = bytearray(buf.getvalue())
        struct.pack_into(">HH", data, data.find(b"\xff\xc0") + 5, side, side)
        return bytes(data[: len(data) * 2 // 3])
    noise.save(buf, "WEBP", **({"lossless": True} if kind == "webp_lossless" else {"quality": 80}))
    data = bytearray(buf.getvalue())
    if kind == "webp_lossless":
        at = data.find(b"VP8L") + 9
        v = struct.unpack("<I", bytes(data[at:at + 4]))[0]
        data[at:at + 4] = struct.pack("<I", (v & ~((1 << 28) - 1)) | (side - 1) | ((side - 1) << 14))
    else:
        struct.pack_into("<HH", data, data.find(b"VP8 ") + 14, side, side)
    return bytes(data[: len(data) // 2])


@pytest.mark.parametrize("kind", ["jpeg", "png", "png_interlaced", "webp_lossy", "webp_lossless"])
def test_truncated_file_claiming_a_large_size_costs_little(kind, tmp_path):
    # Kind 2: the pixels were allocated (and zeroed) from the header's size before the data ran
    # out: a 69-byte PNG, a 2 KB JPEG or a 1 KB cut of a WebP claiming 13000 x 13000 (under
    # the pixel limit) cost 518 MB each before failing. Now: PNG image data too short for the
    # size (deflate expands at most 1032:1) and WebP shorter than its RIFF header are refused
    # before allocating; JPEG rows are touched only as they are decoded.
    import subprocess
    import sys
    path = tmp_path / kind
    path.write_bytes(_claiming_13000(kind))
    with pytest.raises(OSError):
        Image.open(path).load()  # PIL refuses them too
    p = subprocess.run([sys.executable, "-c", _DECODE_PEAK_CHILD, str(path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    mib, message = p.stdout.splitlines()[:2]
    assert message.startswith("'<bytes>': ") and ("truncated" in message or "corrupt" in message), message
    assert float(mib) < 40, f"{kind}: {float(mib):.0f} MiB at the peak for a {path.stat().st_size}-byte file ({message})"


def test_png_at_the_deflate_ratio_limit_still_decodes():
    # The truncation bound is deflate's own limit, so the most compressible PNG still decodes.
    side = 3000
    z = zlib.compressobj(9)
    row = b"\0" + b"\0" * side * 3
    body = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    assert side * side * 3 / len(body) > 1000  # near 1032:1
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", body) + _chunk(b"IEND", b""))
    out = decode(data, 3)
    assert out.shape == (side, side, 3) and not out.any()


JPEG_FIXTURES = sorted((Path(__file__).resolve().parents[1] / "data" / "kuat" / "jpeg").glob("*.jpg"))


@pytest.mark.parametrize("path", JPEG_FIXTURES, ids=[p.stem for p in JPEG_FIXTURES])
def test_jpeg_fixtures_match_pil(path):
    # JPEGs PIL's encoder cannot write (tests/data/kuat/jpeg/make_fixtures.py): 4:1:1, 4:1:0,
    # 4:4:0, 3:1 and mixed sampling factors, restart intervals, arithmetic coding (sequential
    # and progressive), YCCK and CMYK with 2x2 sampling, RGB without an Adobe marker, a 40-scan
    # script; at odd sizes. Both libraries are libjpeg-turbo with its default (fancy)
    # upsampling and islow IDCT, so the pixels are equal, and gray is PIL's convert("L").
    data = path.read_bytes()
    im = Image.open(io.BytesIO(data))
    np.testing.assert_array_equal(decode(data, 3), np.asarray(im.convert("RGB")))
    np.testing.assert_array_equal(decode(data, 1)[..., 0], np.asarray(Image.open(io.BytesIO(data)).convert("L")))
