"""Run every benchmark: ``make bench``."""

from __future__ import annotations

from bench import banner, dashboard, e2e, ledger, privacy, request_path, rewrite


def main() -> None:
    """Run the benchmarks and print their tables."""
    request_path.main()
    rewrite.main()
    e2e.main()
    privacy.main()
    ledger.main([])
    banner.main([])
    dashboard.main([])


if __name__ == "__main__":
    main()
