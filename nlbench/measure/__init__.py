"""Measurers: params, flops, latency and memory of one built block on one input, each a
function returning a frozen value object."""
