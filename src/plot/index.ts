// Public entry point of the plotting library (used by `flow plot ...`).
export { lineChart, histogram, panels, binDensities, svgSize } from './charts.js';
export type { Series, Group, LineChartOptions, HistogramOptions } from './charts.js';
export { heatmap, scatter, dataDomain } from './maps.js';
export type { Grid, Domain, HeatmapOptions, ScatterOptions } from './maps.js';
export { renderPng, writeChart } from './render.js';
export { readMetrics, trainingCurves } from './metrics.js';
export type { Metrics, CurvesOptions } from './metrics.js';
export { niceTicks, logTicks, viridis } from './svg.js';
