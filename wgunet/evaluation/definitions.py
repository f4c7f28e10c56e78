"""Each score's name, unit, ideal value and description, defined once: the report, the plots, the training monitor,
the model card and the CLI's summary read them from here (formulas and sources: docs/evaluation.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Score:
    label: str  # short name, for plot titles and one-line summaries
    unit: str  # "" for a ratio or a count
    ideal: str  # the value a generated set identical to the reference would get, or which way is better
    description: str  # what is computed, in one line

    def note(self) -> str:
        """The score's row heading in a table: label (unit), ideal; description."""
        unit = f" ({self.unit})" if self.unit else ""
        return f"{self.label}{unit}, {self.ideal}: {self.description}"

    def title(self) -> str:
        """A plot axis title: label (unit, ideal)."""
        return f"{self.label} ({', '.join(p for p in (self.unit, self.ideal) if p)})"


# The keys are SpectralScores' fields (wgunet.evaluation.spectral) in order, then FID and KID (wgunet.evaluation.fid).
SCORES = {
    "log_spectral_distance_db": Score("log-spectral distance", "dB", "0 is ideal",
                                      "RMS over radius rings of 10 log10(S_gen / S_ref)"),
    "lfd_stig": Score("LFD (STIG)", "", "0 is ideal", "as STIG's evaluation computes it, on 8-bit mean log spectra"),
    "lfd_mean_magnitude": Score("LFD (mean magnitude)", "", "0 is ideal",
                                "log(1 + mean squared difference of the sets' mean orthonormal |DFT|)"),
    "high_frequency_ratio": Score("high-frequency ratio", "", "1 is ideal",
                                  "power at r >= 2/3, generated / reference"),
    "band_error_low": Score("low-band error", "", "0 is ideal", "mean |log10 power ratio| for r < 1/3"),
    "band_error_mid": Score("mid-band error", "", "0 is ideal", "mean |log10 power ratio| for 1/3 <= r < 2/3"),
    "band_error_high": Score("high-band error", "", "0 is ideal", "mean |log10 power ratio| for r >= 2/3"),
    "fid": Score("FID", "", "lower is better", "Frechet distance of the feature Gaussians (interval: bootstrap "
                 "spread around the estimate)"),
    "kid": Score("KID", "", "lower is better", "unbiased squared MMD, cubic kernel, mean ± std over 50 subsets"),
}
