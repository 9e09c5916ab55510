module hoptrace.test/fanout

go 1.26
