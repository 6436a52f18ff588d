# CPU image: `flow` on the WebAssembly backend (no GPU, no native TensorFlow).
#   docker build -t flow .
#   docker run --rm -v "$PWD/runs:/work/runs" flow train configs/quickstart.yaml --max-steps 100
FROM node:20-bookworm-slim
# A font for the captions of sample grids (sharp renders them from SVG through fontconfig).
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/flow
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
# scripts/build-web.ts: npm run build bundles the page of flow export --web.
COPY scripts ./scripts
COPY configs ./configs
# --ignore-scripts skips the optional tfjs-node-gpu download (a GPU libtensorflow this image cannot
# use); the only other install script is a banner. Without that package `--backend auto` picks wasm.
RUN npm ci --ignore-scripts \
 && npm run build \
 && npm prune --omit=dev \
 && rm -rf node_modules/@tensorflow/tfjs-node-gpu \
 && npm cache clean --force \
 && ln -s /opt/flow/bin/flow /usr/local/bin/flow \
 && mkdir -p /work \
 && chown node:node /work
ENV NODE_ENV=production
WORKDIR /work
# The configs travel with the image, so `flow train configs/quickstart.yaml` works from /work.
RUN ln -s /opt/flow/configs /work/configs
USER node
ENTRYPOINT ["flow"]
CMD ["doctor"]
