// Public entry point of the plotting library (used by `flow plot ...`).
export { lineChart, histogram, heatmap, scatter, panels, dataDomain, binDensities, svgSize } from './charts.js';
export type { Series, Group, Grid, Domain, LineChartOptions, HistogramOptions, HeatmapOptions, ScatterOptions } from './charts.js';
export { renderPng, writeChart } from './render.js';
export { readMetrics, trainingCurves } from './metrics.js';
export type { Metrics, CurvesOptions } from './metrics.js';
export { niceTicks, logTicks, viridis } from './svg.js';
