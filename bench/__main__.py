"""Run every benchmark: ``make bench``."""

from __future__ import annotations

from bench import request_path


def main() -> None:
    """Run the benchmarks and print their tables."""
    request_path.main()


if __name__ == "__main__":
    main()
