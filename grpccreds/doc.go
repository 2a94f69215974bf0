package grpccreds
