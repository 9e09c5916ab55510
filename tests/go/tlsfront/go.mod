module hoptrace.test/tlsfront

go 1.26
