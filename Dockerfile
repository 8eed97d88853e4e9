# asslsb-fem image: the same Debian 12 stack (DOLFINx 0.5.2 from Debian) as the tested machines.
#
#   docker build -t asslsb-fem .
#   docker run --rm -v "$PWD/results:/data" asslsb-fem                      # quickstart -> results/quickstart
#   docker run --rm -v "$PWD/results:/data" asslsb-fem \
#       python run_case.py cases/quickstart_3d.toml --out /data/quickstart_3d
#   docker run --rm -v "$PWD/results:/data" asslsb-fem \
#       mpirun -n 4 python run_case.py cases/quickstart_3d.toml --out /data/q3d_mpi
FROM debian:bookworm

ENV DEBIAN_FRONTEND=noninteractive
# make: the Makefile targets wrap the set-up script; ca-certificates: pip fetches gmsh and meshio over TLS
RUN apt-get update \
 && apt-get install -y --no-install-recommends make ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY . /opt/asslsb-fem
WORKDIR /opt/asslsb-fem

# the script the Makefile runs: apt packages (python3-dolfinx, ...), .venv, pip install -e .
RUN bash scripts/setup.sh \
 && rm -rf /var/lib/apt/lists/* /root/.cache/pip \
 && mkdir -p /data

# the container runs as root; Open MPI refuses that unless told; one thread per MPI rank
ENV OMPI_ALLOW_RUN_AS_ROOT=1 \
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    PATH=/opt/asslsb-fem/.venv/bin:$PATH

CMD ["python", "run_case.py", "cases/quickstart.toml", "--out", "/data/quickstart"]
