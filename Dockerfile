# Build stage: compile TypeScript with the development dependencies.
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY cli ./cli
COPY config ./config
COPY db ./db
COPY jobs ./jobs
COPY pipeline ./pipeline
COPY sinks ./sinks
COPY sources ./sources
COPY transforms ./transforms
RUN npm run build

# Runtime stage: production dependencies and the compiled code only, as a non-root user.
FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
USER node
# A smaller young generation keeps the export's peak RSS near 120 MB instead of 220 MB, at no
# measured cost in speed (bench/export-vs-copy.ts).
ENTRYPOINT ["node", "--max-semi-space-size=16", "/app/dist/cli/main.js"]
