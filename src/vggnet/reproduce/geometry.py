"""The paper's geometry in miniature: its training scales S and test scales Q at another crop by the same ratios,
the maps its blocks run on, and where that geometry keeps a protocol or a comparison from meaning what it meant in
the paper (dense evaluation with a stride as large as the crop; 1x1 against 3x3 on maps of a few pixels)."""

from __future__ import annotations

from dataclasses import dataclass

STRIDE_CROPS = 7  # the paper's crop (224) is 7 of the net's strides (32): what dense evaluation needs


@dataclass(frozen=True)
class Geometry:
    """The paper's scales at another crop size, by the same ratios: S = 256/224 and 384/224 of the crop, jittered
    between 256/224 and 512/224 of it; test scales Q likewise (Sect. 3.2)."""

    crop: int

    def px(self, paper: int) -> int:
        """The miniature's size for a paper size (224 -> the crop)."""
        return max(1, round(paper * self.crop / 224))

    def scale(self, kind: str) -> list[int]:
        return {"256": [self.px(256)], "384": [self.px(384)], "jitter": [self.px(256), self.px(512)]}[kind]

    def q_single(self, kind: str) -> int:
        """Q = S for fixed S, (Smin + Smax) / 2 for jittered S."""
        s = self.scale(kind)
        return (s[0] + s[-1]) // 2

    def q_multi(self, kind: str) -> list[int]:
        """Q in {S - 32, S, S + 32} for fixed S, {Smin, (Smin + Smax) / 2, Smax} for jittered S, miniaturised."""
        if kind == "jitter":
            lo, hi = self.scale(kind)
            return [lo, (lo + hi) // 2, hi]
        s, d = self.scale(kind)[0], self.px(32)
        return [s - d, s, s + d]

    def paper(self, size: int) -> str:
        """A miniature size as the paper's (28 of a 28 crop -> "224")."""
        value = size * 224 / self.crop
        return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"

    def label(self, kind: str) -> str:
        """A training scale in the miniature's own pixels, the paper's beside it: ``S=32 (256)``."""
        s = self.scale(kind)
        if len(s) > 1:
            return f"S∈[{s[0]},{s[1]}] ([{self.paper(s[0])},{self.paper(s[1])}])"
        return f"S={s[0]} ({self.paper(s[0])})"

    def block_sizes(self) -> list[int]:
        """The side of the map each of the five blocks runs on at the crop (pools round up, as the authors' did)."""
        sizes = [self.crop]
        for _ in range(4):
            sizes.append(-(-sizes[-1] // 2))
        return sizes

    def padding_share(self) -> float:
        """The share of a 3x3 kernel's taps that fall on the padding, on average over the smallest map of blocks
        3-5 (where C's 1x1 layers are)."""
        small = min(self.block_sizes()[2:])
        return 1 - (((3 * small - 2) / (3 * small)) ** 2 if small > 1 else 1 / 9)

    def one_by_one_breaks(self) -> str | None:
        """Why C (1x1 convolutions in blocks 3-5) against D (3x3 there) cannot be tested at this crop, or None. A
        3x3 layer's advantage is the context around each position; where on average a third or more of its taps
        fall on the padding (a map of 3 x 3 or less), there is almost none for it to add."""
        if self.padding_share() <= 1 / 3:
            return None
        sizes, room = self.block_sizes()[2:], self.crop_for_one_by_one()
        return (
            f"1x1 against 3x3: at a crop of {self.crop}, blocks 3-5 run on {', '.join(map(str, sizes))}-pixel maps "
            f"(the paper's on 56, 28 and 14); on the {min(sizes)} x {min(sizes)} map "
            f"{100 * self.padding_share():.0f} % of a 3x3 kernel's taps fall on the padding, so it has almost no "
            f"context that 1x1 lacks (a crop of {room} or more gives it room)"
        )

    def crop_for_one_by_one(self) -> int:
        """The smallest crop from this one up where 1x1 against 3x3 can be tested."""
        return next(c for c in range(self.crop, 64 * self.crop) if Geometry(c).padding_share() <= 1 / 3)

    def dense_breaks(self, qs: list[int], stride: int = 32) -> str | None:
        """Why the paper's dense evaluation does not mean here what it means in the paper, or None where it does.
        The dense net's cells are windows of the head's extent, ``stride`` pixels apart; in the paper the crop is 7
        strides, so each cell sees a crop-sized window inside the image. Where the stride is at least the crop, or a
        cell's window reaches past the image at some Q, the dense net measures that breakdown, not the protocol."""
        if stride >= self.crop:
            return (
                f"the net's stride ({stride} pixels) is at least the crop ({self.crop}): each cell of the dense "
                f"map sees a {stride}-pixel window, {stride} pixels from the next, so at the test scales "
                f"{', '.join(map(str, qs))} the cells look mostly past the image (the paper's crop is "
                f"{STRIDE_CROPS} strides); it would be tested with a crop of {STRIDE_CROPS * stride} pixels "
                "(--paper)"
            )
        head = -(-self.crop // stride)
        for q in qs:
            cells = -(-q // stride) - head + 1
            if cells < 1 or (cells - 1) * stride + head * stride > q + stride // 2:
                return f"at Q = {q} the dense map's windows reach past the image (crop {self.crop}, stride {stride})"
        return None
