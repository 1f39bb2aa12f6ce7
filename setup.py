from setuptools import find_packages, setup

setup(
    name="hlsproxy",
    version="0.1.0",
    description="HLS (m3u8) streaming proxy: signed rewriting, streamed segments, per-stream upstreams",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["hls_proxy", "hls_proxy.*"]) + ["twisted.plugins"],
    package_data={"hls_proxy": ["page/*", "py.typed"], "twisted": ["plugins/hlsproxy_plugin.py"]},
    include_package_data=True,
    install_requires=[
        "twisted[tls]>=24.7.0",
        "treq>=24.9.1",
        "service-identity>=24.1.0",
        "pyopenssl>=24.2.1",
        "attrs>=23.1.0",
        # AES-SIV for the sealed child URLs (signing.py); pyopenssl pulls it in anyway.
        "cryptography>=42",
        # The Prometheus text format and its types, rather than a hand-written renderer.
        "prometheus_client>=0.20.0",
    ],
    extras_require={
        "test": ["hypothesis>=6.100"],
        "lint": ["ruff>=0.6", "mypy>=1.10", "mypy-zope>=1.0.5", "import-linter>=2.1"],
    },
    zip_safe=False,
)
