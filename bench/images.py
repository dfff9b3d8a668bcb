"""What an uploaded photo costs: ``catalog.storage.clean_image`` on a 4000 x 3000 phone JPEG.

The photo is made here (smooth gradients under sensor-like noise, quality 92, about 3 MB),
upright and turned by its EXIF orientation. Prints one JSON object: the median milliseconds
of decoding and re-encoding each, and the longest the event loop waited while one ran.

    python bench/images.py [--rounds 5]
"""

import argparse
import asyncio
import io
import json
import statistics
import time

from PIL import ExifTags, Image

from originlive.catalog.storage import clean_image

SIZE = (4000, 3000)


def phone_photo(orientation: int) -> bytes:
    """A photo-like JPEG of SIZE, as a phone writes it."""
    gradients = [Image.linear_gradient("L"), Image.radial_gradient("L")]
    channels = [*gradients, gradients[0].rotate(90)]
    picture = Image.merge("RGB", [c.resize(SIZE) for c in channels])
    noise = Image.effect_noise(SIZE, 18).convert("RGB")
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    out = io.BytesIO()
    Image.blend(picture, noise, 0.25).save(out, "JPEG", quality=92, exif=exif)
    return out.getvalue()


async def longest_stall(data: bytes) -> float:
    """Milliseconds the event loop waited at most while one photo was cleaned."""
    gaps: list[float] = []
    ticking = True

    async def tick() -> None:
        last = time.perf_counter()
        while ticking:
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await clean_image(data)
    ticking = False
    await ticker
    return max(gaps) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result: dict[str, object] = {"size": f"{SIZE[0]}x{SIZE[1]}"}
    for name, orientation in (("upright", 1), ("turned", 6)):
        data = phone_photo(orientation)
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            clean = await clean_image(data)
            times.append((time.perf_counter() - start) * 1000)
        result[name] = {
            "input_bytes": len(data),
            "output_bytes": len(clean.data),
            "median_ms": round(statistics.median(times)),
            "loop_stall_ms": round(await longest_stall(data), 1),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
